use serde_json::json;

use crate::helpers::{TestRegistry, user_v1, user_v2_compatible, user_v2_incompatible};

#[tokio::test]
async fn the_same_schema_registered_twice_gets_the_same_id_and_one_version() {
    let registry = TestRegistry::start().await;
    let (status, first) = registry.register("users-value", &user_v1()).await;
    assert_eq!(status, 200, "{first}");
    // Same meaning, different spelling: key order and whitespace do not matter.
    let respelled = r#"{ "namespace":"test", "name":"User", "type":"record",
        "fields":[{"type":"string","name":"email"},{"type":"string","name":"name"}] }"#;
    let (_, second) = registry.send("POST", "/subjects/users-value/versions", json!({ "schema": respelled })).await;
    assert_eq!(first["id"], second["id"]);
    assert_eq!(registry.get("/subjects/users-value/versions").await, (200, json!([1])));
    registry.stop().await;
}

#[tokio::test]
async fn ids_are_global_shared_by_identical_schemas_across_subjects() {
    let registry = TestRegistry::start().await;
    let (_, a) = registry.register("a-value", &user_v1()).await;
    let (_, b) = registry.register("b-value", &user_v1()).await;
    let (_, c) = registry.register("c-value", &json!("string")).await;
    assert_eq!(a["id"], b["id"]);
    assert_ne!(a["id"], c["id"]);
    let (_, subjects) = registry.get(&format!("/schemas/ids/{}/subjects", a["id"])).await;
    assert_eq!(subjects, json!(["a-value", "b-value"]));
    registry.stop().await;
}

#[tokio::test]
async fn an_incompatible_schema_is_refused_with_409_under_backward_and_accepted_under_none() {
    let registry = TestRegistry::start().await;
    registry.register("users-value", &user_v1()).await;
    let (status, body) = registry.register("users-value", &user_v2_incompatible()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error_code"], 409);
    assert!(body["message"].as_str().unwrap().contains("incompatible"), "{body}");

    let (status, _) = registry.register("users-value", &user_v2_compatible()).await;
    assert_eq!(status, 200, "a new field with a default is backward compatible");

    let (status, body) = registry.send("PUT", "/config/users-value", json!({"compatibility": "NONE"})).await;
    assert_eq!((status, body), (200, json!({"compatibility": "NONE"})));
    let (status, body) = registry.register("users-value", &user_v2_incompatible()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(registry.get("/subjects/users-value/versions").await.1, json!([1, 2, 3]));
    registry.stop().await;
}

#[tokio::test]
async fn invalid_avro_is_refused_with_42201() {
    let registry = TestRegistry::start().await;
    let bad_type = json!({"type": "record", "name": "X", "fields": [{"name": "a", "type": "no-such-type"}]});
    let (status, body) = registry.register("x-value", &bad_type).await;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42201)), "{body}");
    let (status, body) = registry.send("POST", "/subjects/x-value/versions", json!({"schema": "{not json"})).await;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42201)), "{body}");
    let (status, body) =
        registry.send("POST", "/subjects/x-value/versions", json!({"schema": "{}", "schemaType": "PROTOBUF"})).await;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42201)), "{body}");
    let (status, body) = registry.send("POST", "/subjects/x-value/versions", json!("not an object")).await;
    assert_eq!(status, 422, "{body}");
    registry.stop().await;
}

#[tokio::test]
async fn unknown_things_get_confluent_error_codes() {
    let registry = TestRegistry::start().await;
    registry.register("known-value", &user_v1()).await;
    for (path, status, code) in [
        ("/subjects/unknown-value/versions", 404, 40401),
        ("/subjects/unknown-value/versions/latest", 404, 40401),
        ("/subjects/known-value/versions/7", 404, 40402),
        ("/subjects/known-value/versions/zero", 422, 42202),
        ("/schemas/ids/987654", 404, 40403),
        ("/config/known-value", 404, 40408),
    ] {
        let (got, body) = registry.get(path).await;
        assert_eq!((got, body["error_code"].clone()), (status, json!(code)), "{path}: {body}");
        assert!(body["message"].is_string(), "{path}: {body}");
    }
    registry.stop().await;
}

#[tokio::test]
async fn unknown_paths_including_associations_are_json_404s() {
    let registry = TestRegistry::start().await;
    for path in ["/associations/resources/-/orders?resourceType=topic", "/nowhere", "/schemas/guids/abc"] {
        let (status, body) = registry.get(path).await;
        assert_eq!((status, body["error_code"].clone()), (404, json!(404)), "{path}: {body}");
    }
    registry.stop().await;
}

#[tokio::test]
async fn reads_tolerate_extra_query_parameters() {
    let registry = TestRegistry::start().await;
    let (_, registered) = registry.register("users-value", &user_v1()).await;
    let id = &registered["id"];
    let (status, by_id) = registry.get(&format!("/schemas/ids/{id}?subject=users-value&deleted=true&format=x")).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<serde_json::Value>(by_id["schema"].as_str().unwrap()).unwrap(), user_v1());
    let (status, latest) = registry.get("/subjects/users-value/versions/latest?deleted=false").await;
    assert_eq!(status, 200);
    assert_eq!((&latest["subject"], &latest["version"], &latest["id"]), (&json!("users-value"), &json!(1), id));
    registry.stop().await;
}

#[tokio::test]
async fn lookup_finds_the_version_holding_a_schema() {
    let registry = TestRegistry::start().await;
    registry.register("users-value", &user_v1()).await;
    let (_, v2) = registry.register("users-value", &user_v2_compatible()).await;
    let body = json!({"schema": user_v2_compatible().to_string()});
    let (status, found) = registry.send("POST", "/subjects/users-value?deleted=false", body.clone()).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!((&found["version"], &found["id"]), (&json!(2), &v2["id"]));
    let (status, missing) = registry.send("POST", "/subjects/other-value", body).await;
    assert_eq!((status, missing["error_code"].clone()), (404, json!(40401)));
    let unknown = json!({"schema": "\"bytes\""});
    let (status, missing) = registry.send("POST", "/subjects/users-value", unknown).await;
    assert_eq!((status, missing["error_code"].clone()), (404, json!(40403)));
    registry.stop().await;
}

#[tokio::test]
async fn compatibility_levels_are_read_and_set_globally_and_per_subject() {
    let registry = TestRegistry::start().await;
    assert_eq!(registry.get("/config").await, (200, json!({"compatibilityLevel": "BACKWARD"})));
    let (status, body) = registry.send("PUT", "/config", json!({"compatibility": "sometimes"})).await;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42203)));
    let (status, _) = registry.send("PUT", "/config", json!({"compatibility": "full_transitive"})).await;
    assert_eq!(status, 200);
    assert_eq!(registry.get("/config").await.1, json!({"compatibilityLevel": "FULL_TRANSITIVE"}));
    assert_eq!(
        registry.get("/config/s?defaultToGlobal=true").await.1,
        json!({"compatibilityLevel": "FULL_TRANSITIVE"})
    );
    registry.send("PUT", "/config/s", json!({"compatibility": "FORWARD"})).await;
    assert_eq!(registry.get("/config/s").await.1, json!({"compatibilityLevel": "FORWARD"}));
    assert_eq!(registry.send("DELETE", "/config/s", json!(null)).await.1, json!({"compatibilityLevel": "FORWARD"}));
    assert_eq!(registry.get("/config/s").await.1["error_code"], 40408);
    registry.stop().await;
}

#[tokio::test]
async fn a_compatibility_test_answers_without_registering() {
    let registry = TestRegistry::start().await;
    registry.register("users-value", &user_v1()).await;
    let incompatible = json!({"schema": user_v2_incompatible().to_string()});
    let (status, body) =
        registry.send("POST", "/compatibility/subjects/users-value/versions/latest?verbose=true", incompatible).await;
    assert_eq!(status, 200);
    assert_eq!(body["is_compatible"], false);
    assert!(!body["messages"].as_array().unwrap().is_empty(), "{body}");
    let compatible = json!({"schema": user_v2_compatible().to_string()});
    let (_, body) = registry.send("POST", "/compatibility/subjects/users-value/versions", compatible).await;
    assert_eq!(body, json!({"is_compatible": true}));
    assert_eq!(registry.get("/subjects/users-value/versions").await.1, json!([1]));
    registry.stop().await;
}

#[tokio::test]
async fn soft_delete_hides_a_subject_and_permanent_delete_requires_it_first() {
    let registry = TestRegistry::start().await;
    let (_, registered) = registry.register("gone-value", &user_v1()).await;
    let (status, body) = registry.send("DELETE", "/subjects/gone-value?permanent=true", json!(null)).await;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40405)));

    assert_eq!(registry.send("DELETE", "/subjects/gone-value", json!(null)).await, (200, json!([1])));
    assert_eq!(registry.get("/subjects").await.1, json!([]));
    assert_eq!(registry.get("/subjects?deleted=true").await.1, json!(["gone-value"]));
    assert_eq!(registry.get("/subjects/gone-value/versions").await.1["error_code"], 40401);
    let (status, _) = registry.get(&format!("/schemas/ids/{}", registered["id"])).await;
    assert_eq!(status, 200, "a soft-deleted schema still decodes old records");
    let (status, body) = registry.send("DELETE", "/subjects/gone-value", json!(null)).await;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40404)));

    assert_eq!(registry.send("DELETE", "/subjects/gone-value?permanent=true", json!(null)).await, (200, json!([1])));
    assert_eq!(registry.get("/subjects?deleted=true").await.1, json!([]));
    registry.stop().await;
}

#[tokio::test]
async fn with_an_admin_token_deletes_and_setting_changes_need_it_and_registering_does_not() {
    let dir = std::env::temp_dir().join(platform::testing::unique("registry-admin"));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("admin-token");
    std::fs::write(&token_file, "a-long-enough-admin-token\n").unwrap();
    let mut registry = TestRegistry::start_with(platform::testing::unique("test-schemas"), Some(token_file)).await;
    let (status, _) = registry.register("guarded-value", &user_v1()).await;
    assert_eq!(status, 200, "registering stays open to the services");

    let changes = [
        ("DELETE", "/subjects/guarded-value/versions/1", json!(null)),
        ("DELETE", "/subjects/guarded-value", json!(null)),
        ("PUT", "/config", json!({"compatibility": "NONE"})),
        ("PUT", "/config/guarded-value", json!({"compatibility": "NONE"})),
        ("DELETE", "/config/guarded-value", json!(null)),
    ];
    let basic = |password: &str| {
        use base64::Engine as _;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}")))
    };
    for refused in [
        None,
        Some("Bearer wrong-token-of-some-length".to_owned()),
        Some(basic("wrong")),
        Some("a-long-enough-admin-token".to_owned()),
    ] {
        registry.authorization = refused.clone();
        for (method, path, body) in &changes {
            let (status, answer) = registry.send(method, path, body.clone()).await;
            assert_eq!((status, answer["error_code"].clone()), (401, json!(40101)), "{method} {path} with {refused:?}");
        }
    }
    registry.authorization = None;
    assert_eq!(registry.get("/subjects").await.1, json!(["guarded-value"]), "nothing changed");
    assert_eq!(registry.get("/config").await.1["compatibilityLevel"], "BACKWARD");

    registry.authorization = Some(basic("a-long-enough-admin-token"));
    assert_eq!(registry.send("PUT", "/config", json!({"compatibility": "NONE"})).await.0, 200);
    registry.authorization = Some("Bearer a-long-enough-admin-token".to_owned());
    assert_eq!(registry.send("DELETE", "/subjects/guarded-value", json!(null)).await, (200, json!([1])));
    registry.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_every_id_version_and_setting() {
    let registry = TestRegistry::start().await;
    let (_, v1) = registry.register("users-value", &user_v1()).await;
    let (_, v2) = registry.register("users-value", &user_v2_compatible()).await;
    registry.send("PUT", "/config/users-value", json!({"compatibility": "FULL"})).await;
    registry.send("DELETE", "/subjects/users-value/versions/1", json!(null)).await;
    let topic = registry.topic.clone();
    registry.stop().await;

    let restarted = TestRegistry::start_on(topic).await;
    assert_eq!(restarted.get("/subjects/users-value/versions").await.1, json!([2]));
    assert_eq!(restarted.get("/subjects/users-value/versions?deleted=true").await.1, json!([1, 2]));
    assert_eq!(restarted.get("/subjects/users-value/versions/2").await.1["id"], v2["id"]);
    assert_eq!(restarted.get(&format!("/schemas/ids/{}", v1["id"])).await.0, 200);
    assert_eq!(restarted.get("/config/users-value").await.1, json!({"compatibilityLevel": "FULL"}));
    let (_, again) = restarted.register("users-value", &user_v2_compatible()).await;
    assert_eq!(again["id"], v2["id"], "the same schema keeps its id across restarts");
    let (_, new) = restarted.register("other-value", &json!("long")).await;
    assert!(new["id"].as_u64() > v2["id"].as_u64(), "new ids continue after the old ones");
    restarted.stop().await;
}

#[tokio::test]
async fn concurrent_registrations_of_the_same_new_schema_yield_one_id() {
    let registry = TestRegistry::start().await;
    let client = reqwest::Client::new();
    let body = json!({"schema": user_v1().to_string()}).to_string();
    let requests = (0..50).map(|_| {
        let request = client
            .post(format!("{}/subjects/race-value/versions", registry.url))
            .header("content-type", "application/json")
            .body(body.clone());
        async move { request.send().await.expect("request").json::<serde_json::Value>().await.expect("json") }
    });
    let answers = futures::future::join_all(requests).await;
    let ids: std::collections::BTreeSet<String> = answers.iter().map(|a| a["id"].to_string()).collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert_eq!(registry.get("/subjects/race-value/versions").await.1, json!([1]));
    registry.stop().await;
}

/// The project's subjects run at FULL_TRANSITIVE: every version must read, and be read by,
/// every other. A `User` record and the changes people try on it.
fn evolving_user(extra_fields: &[serde_json::Value], email_type: &str, states: &[&str]) -> serde_json::Value {
    let mut fields = vec![
        json!({"name": "email", "type": email_type}),
        json!({"name": "state", "type": {"type": "enum", "name": "State", "symbols": states}}),
    ];
    fields.extend(extra_fields.iter().cloned());
    json!({"type": "record", "name": "User", "namespace": "test", "fields": fields})
}

#[tokio::test]
async fn under_full_transitive_each_breaking_change_is_refused_with_409() {
    let registry = TestRegistry::start().await;
    let (status, _) = registry.send("PUT", "/config/evolving-value", json!({"compatibility": "FULL_TRANSITIVE"})).await;
    assert_eq!(status, 200);
    let states = ["ACTIVE", "BLOCKED"];
    let locale = json!({"name": "locale", "type": ["null", "string"], "default": null});
    let tier = json!({"name": "tier", "type": "string", "default": "basic"});
    let v1 = evolving_user(&[], "string", &states);
    let v2 = evolving_user(&[locale.clone(), tier.clone()], "string", &states);
    assert_eq!(registry.register("evolving-value", &v1).await.0, 200);
    assert_eq!(registry.register("evolving-value", &v2).await.0, 200, "an optional field with a default");

    let without_default = json!({"name": "age", "type": "int"});
    // Fine against v2, which has `tier`, but v3 could not read v1's records.
    let tier_without_default = json!({"name": "tier", "type": "string"});
    for (what, schema) in [
        (
            "a field without a default",
            evolving_user(&[locale.clone(), tier.clone(), without_default], "string", &states),
        ),
        ("a field's type changed", evolving_user(&[locale.clone(), tier.clone()], "int", &states)),
        ("an enum symbol removed", evolving_user(&[locale.clone(), tier.clone()], "string", &["ACTIVE"])),
        (
            "a default dropped (breaks only against v1)",
            evolving_user(&[locale.clone(), tier_without_default], "string", &states),
        ),
    ] {
        let (status, body) = registry.register("evolving-value", &schema).await;
        assert_eq!((status, body["error_code"].clone()), (409, json!(409)), "{what}: {body}");
        let (status, verdict) = registry
            .send("POST", "/compatibility/subjects/evolving-value/versions", json!({"schema": schema.to_string()}))
            .await;
        assert_eq!((status, verdict["is_compatible"].clone()), (200, json!(false)), "{what}: {verdict}");
    }
    assert_eq!(registry.get("/subjects/evolving-value/versions").await.1, json!([1, 2]), "nothing was added");
    registry.stop().await;
}
