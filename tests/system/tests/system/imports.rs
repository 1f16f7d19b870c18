use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use system_tests::{Options, TestSystem};

use crate::support::{assert_progress_only_grows, upload, user, wait_import};

fn with_worker() -> Options {
    Options { import_worker: true, ..Options::default() }
}

#[tokio::test]
async fn a_mixed_file_imports_exactly_the_good_rows_and_reports_each_bad_row_with_its_line() {
    let system = TestSystem::start_with(with_worker()).await;
    let taken = system.call(Method::POST, "/users", Some(json!({"email": "taken@example.com", "name": "Taken"}))).await;
    assert_eq!(taken.status, StatusCode::CREATED);

    let mut file = "\u{feff}Name,EMAIL,age,phone\r\n".as_bytes().to_vec();
    for row in [
        "\"Lovelace, Ada\",ada@example.com,36,555\r\n", // 2: good, quoted comma
        "\"Grace \"\"Amazing\"\" Hopper\",grace@example.com,,\r\n", // 3: good, quoted quotes, no age
        "\"Alan\r\nTuring\",alan@example.com,41,\r\n",  // 4-5: good, quoted line break
        "Edsger,not-an-email,72,\r\n",                  // 6: invalid email
        ",barbara@example.com,35,\r\n",                 // 7: missing name
        "Donald,donald@example.com,151,\r\n",           // 8: age out of range
        "Margaret,margaret@example.com,forty,\r\n",     // 9: age not a number
        "Linus,ADA@Example.com,50,\r\n",                // 10: email repeated in the file
        "Someone,Taken@Example.com,30,\r\n",            // 11: email already taken
        "Katherine\r\n",                                // 12: missing columns
    ] {
        file.extend_from_slice(row.as_bytes());
    }
    file.extend_from_slice(b"\xff\xfe,bad-utf8@example.com,20,\r\n"); // 13: name is not UTF-8
    file.extend_from_slice(b"\r\n"); // 14: blank, skipped
    file.extend_from_slice(b"Dennis,dennis@example.com,70,\r\n"); // 15: good

    let id = upload(&system, &file, None).await;
    let statuses = wait_import(&system, &id, Duration::from_secs(60)).await;
    assert_progress_only_grows(&statuses);
    let last = statuses.last().unwrap();
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(
        (last["rows_read"].clone(), last["accepted"].clone(), last["rejected"].clone()),
        (json!(12), json!(4), json!(8))
    );
    assert_eq!(last["warnings"], json!(["unknown column 'phone' ignored"]));
    assert!(last["rows_per_second"].as_f64().is_some_and(|r| r > 0.0), "{last}");

    let ada = user(&system, "ada@example.com").await.expect("ada imported");
    assert_eq!((ada["name"].clone(), ada["age"].clone()), (json!("Lovelace, Ada"), json!(36)));
    let grace = user(&system, "grace@example.com").await.expect("grace imported");
    assert_eq!((grace["name"].clone(), grace["age"].clone()), (json!("Grace \"Amazing\" Hopper"), json!(null)));
    assert_eq!(user(&system, "alan@example.com").await.expect("alan imported")["name"], "Alan\r\nTuring");
    assert!(user(&system, "dennis@example.com").await.is_some());
    for absent in ["barbara@example.com", "donald@example.com", "margaret@example.com", "bad-utf8@example.com"] {
        assert!(user(&system, absent).await.is_none(), "{absent} must not be imported");
    }
    assert_eq!(user(&system, "taken@example.com").await.unwrap()["name"], "Taken", "the existing user is untouched");

    let report = system.client.get(format!("{}/imports/{id}/errors", system.gateway.url)).send().await.unwrap();
    assert_eq!(report.status(), StatusCode::OK);
    assert!(report.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = report.text().await.unwrap();
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    let found: Vec<(u64, String, String)> = rows
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].parse().unwrap(), r[1].to_owned(), r[2].to_owned())
        })
        .collect();
    let expected = [
        (6, "email", "invalid"),
        (7, "name", "required"),
        (8, "age", "out_of_range"),
        (9, "age", "invalid"),
        (10, "email", "duplicate_in_file"),
        (11, "email", "email_taken"),
        (12, "email", "missing_column"),
        (12, "age", "missing_column"),
        (13, "name", "bad_utf8"),
    ];
    let expected: Vec<(u64, String, String)> =
        expected.iter().map(|(l, f, c)| (*l, (*f).to_owned(), (*c).to_owned())).collect();
    assert_eq!(found, expected, "{text}");

    let listed = system.call(Method::GET, "/imports", None).await;
    assert_eq!(listed.body["items"][0]["import_id"], id.as_str());
    system.stop().await;
}

#[tokio::test]
async fn upsert_mode_updates_existing_users_by_email_where_create_mode_refuses_them() {
    let system = TestSystem::start_with(with_worker()).await;
    let ada =
        system.call(Method::POST, "/users", Some(json!({"email": "ada@example.com", "name": "Ada", "age": 30}))).await;
    let ada_id = ada.body["id"].clone();
    let file = b"email,name,age\nADA@example.com,Ada Lovelace,36\nnew@example.com,New Person,\n";

    let refused = upload(&system, file, None).await;
    let last = wait_import(&system, &refused, Duration::from_secs(60)).await.pop().unwrap();
    assert_eq!((last["accepted"].clone(), last["rejected"].clone()), (json!(1), json!(1)), "{last}");
    assert_eq!(user(&system, "ada@example.com").await.unwrap()["name"], "Ada");

    let upserted = upload(&system, file, Some("upsert")).await;
    let last = wait_import(&system, &upserted, Duration::from_secs(60)).await.pop().unwrap();
    assert_eq!(
        (last["mode"].clone(), last["accepted"].clone(), last["rejected"].clone()),
        (json!("upsert"), json!(2), json!(0))
    );
    let updated = user(&system, "ada@example.com").await.unwrap();
    assert_eq!(updated["id"], ada_id, "the same user, updated");
    assert_eq!(
        (updated["name"].clone(), updated["age"].clone(), updated["version"].clone()),
        (json!("Ada Lovelace"), json!(36), json!(2))
    );
    assert!(user(&system, "new@example.com").await.is_some(), "an unknown email is created");
    system.stop().await;
}

#[tokio::test]
async fn a_locale_column_sets_locales_and_an_empty_cell_keeps_an_upserted_users_locale() {
    let system = TestSystem::start_with(with_worker()).await;
    let ada = json!({"email": "ada@example.com", "name": "Ada", "locale": "en-GB"});
    assert_eq!(system.call(Method::POST, "/users", Some(ada)).await.status, StatusCode::CREATED);
    let file = b"email,name,locale\nada@example.com,Ada L.,\nbob@example.com,Bob,de_at\ncy@example.com,Cy,welsh\n";
    let id = upload(&system, file, Some("upsert")).await;
    let last = wait_import(&system, &id, Duration::from_secs(60)).await.pop().unwrap();
    assert_eq!((last["accepted"].clone(), last["rejected"].clone()), (json!(2), json!(1)), "{last}");
    assert!(last["warnings"].as_array().unwrap().is_empty(), "locale is a known column: {last}");
    let ada = user(&system, "ada@example.com").await.unwrap();
    assert_eq!((ada["name"].clone(), ada["locale"].clone()), (json!("Ada L."), json!("en-GB")));
    assert_eq!(user(&system, "bob@example.com").await.unwrap()["locale"], "de-AT");
    let report = system.client.get(format!("{}/imports/{id}/errors", system.gateway.url)).send().await.unwrap();
    assert_eq!(
        report.text().await.unwrap().lines().nth(1).unwrap().split(',').take(3).collect::<Vec<_>>(),
        ["4", "locale", "invalid"]
    );
    system.stop().await;
}

#[tokio::test]
async fn a_finished_import_is_forgotten_after_its_retention_even_by_a_restarted_gateway() {
    let options = system_tests::Options {
        import_worker: true,
        job_retention: Some(Duration::from_secs(1)),
        ..system_tests::Options::default()
    };
    let mut system = TestSystem::start_with(options).await;
    let id = upload(&system, b"email,name\nforgotten@example.com,F\n", None).await;
    let statuses = crate::support::wait_import(&system, &id, Duration::from_secs(60)).await;
    assert_eq!(statuses.last().unwrap()["status"], "completed");
    platform::testing::eventually("the import forgotten", Duration::from_secs(30), || async {
        let status = system.call(Method::GET, &format!("/imports/{id}"), None).await;
        (status.status == reqwest::StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    system.restart_gateway().await;
    let status = system.call(Method::GET, &format!("/imports/{id}"), None).await;
    assert_eq!(status.status, reqwest::StatusCode::NOT_FOUND, "the tombstone holds after a rebuild");
    let found = system.call(Method::GET, "/users?email=forgotten@example.com", None).await;
    assert_eq!(found.body["items"].as_array().unwrap().len(), 1, "the user stays, only the job is forgotten");
    system.stop().await;
}

#[tokio::test]
async fn an_import_whose_user_service_never_answers_ends_failed_within_its_bound() {
    let options = Options { import_reply_timeout: Some(Duration::from_secs(2)), ..with_worker() };
    let mut system = TestSystem::start_with(options).await;
    system.stop_user_service().await;
    let id = upload(&system, b"name,email\nAda,ada@example.com\nGrace,grace@example.com\n", None).await;
    let statuses = wait_import(&system, &id, Duration::from_secs(30)).await;
    let last = statuses.last().expect("a status");
    assert_eq!(last["status"], "failed", "{last}");
    let error = last["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("user-service did not answer for 2 s"), "{last}");
    system.stop().await;
}
