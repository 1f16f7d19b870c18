//! Tokens and keys as a client presents them, against the configuration a gateway would have:
//! each way a credential can be wrong is refused with the reason a client can act on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth::dev::{self, Claims};
use auth::{AuthConfig, AuthError, Authenticator, Principal, Role, Secret, SetupError, api_keys};
use clap::Parser;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";

#[derive(Debug, Parser)]
struct Probe {
    #[command(flatten)]
    auth: AuthConfig,
}

fn config(args: &[&str]) -> AuthConfig {
    Probe::try_parse_from(std::iter::once("probe").chain(args.iter().copied())).expect("valid flags").auth
}

async fn hs256(extra: &[&str]) -> Authenticator {
    let mut config = config(extra);
    config.jwt_secret = Some(Secret::new(SECRET));
    Authenticator::build(&config).await.expect("builds")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn claims(role: Role) -> Claims {
    Claims::new("alice", role, Duration::from_secs(600))
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).expect("test key")
}

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_pem(&pem("test-only-rsa.pem")).expect("rsa key")
}

fn ec_key(name: &str) -> EncodingKey {
    EncodingKey::from_ec_pem(&pem(name)).expect("ec key")
}

fn jwk(key: &EncodingKey, algorithm: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, algorithm).expect("a public jwk");
    jwk.common.key_id = Some(kid.into());
    jwk
}

fn sign(key: &EncodingKey, algorithm: Algorithm, kid: Option<&str>, claims: &Claims) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("signs")
}

fn jwks_file(keys: Vec<Jwk>) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("jwks-{}.json", platform::testing::unique("test")));
    std::fs::write(&path, serde_json::to_string(&JwkSet { keys }).unwrap()).unwrap();
    path
}

#[tokio::test]
async fn an_hs256_token_names_its_subject_and_highest_role() {
    let auth = hs256(&[]).await;
    let token = dev::sign(SECRET, &claims(Role::Writer)).unwrap();
    assert_eq!(
        auth.authenticate(Some(&bearer(&token)), None),
        Ok(Principal { id: "jwt:alice".into(), role: Role::Writer })
    );
    // `roles` as a list: the highest known role counts, unknown ones are ignored.
    #[derive(serde::Serialize)]
    struct Many {
        sub: &'static str,
        aud: &'static str,
        exp: u64,
        roles: [&'static str; 3],
    }
    let exp = claims(Role::Reader).exp;
    let many = Many { sub: "bob", aud: dev::DEFAULT_AUDIENCE, exp, roles: ["reader", "superuser", "admin"] };
    let token = jsonwebtoken::encode(&Header::default(), &many, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap();
    assert_eq!(auth.authenticate(Some(&format!("bearer  {token}")), None).unwrap().role, Role::Admin);
}

#[tokio::test]
async fn expired_forged_misaddressed_and_malformed_tokens_are_refused_with_their_reason() {
    let auth = hs256(&["--jwt-issuer", "https://id.example", "--jwt-leeway-secs", "30"]).await;
    let good = || Claims { iss: Some("https://id.example".into()), ..claims(Role::Admin) };
    let check = |claims: Claims| auth.authenticate(Some(&bearer(&dev::sign(SECRET, &claims).unwrap())), None);
    assert_eq!(check(good()).unwrap().role, Role::Admin);

    let expired = Claims { exp: good().iat - 31, ..good() };
    assert_eq!(check(expired), Err(AuthError::Expired));
    let within_leeway = Claims { exp: good().iat - 20, ..good() };
    assert!(check(within_leeway).is_ok(), "clock skew within the leeway is tolerated");
    assert_eq!(check(Claims { aud: "another-api".into(), ..good() }), Err(AuthError::InvalidToken("wrong audience")));
    assert_eq!(
        check(Claims { iss: Some("https://evil".into()), ..good() }),
        Err(AuthError::InvalidToken("wrong issuer"))
    );
    assert!(matches!(check(Claims { iss: None, ..good() }), Err(AuthError::InvalidToken(_))));
    assert_eq!(check(Claims { role: "root".into(), ..good() }), Err(AuthError::NoRole));

    let forged = dev::sign("another-secret-another-secret-another", &good()).unwrap();
    assert_eq!(auth.authenticate(Some(&bearer(&forged)), None), Err(AuthError::InvalidToken("bad signature")));
    // The same claims with no signature at all (`alg: none`).
    let unsigned = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), forged.split('.').nth(1).unwrap());
    assert!(matches!(auth.authenticate(Some(&bearer(&unsigned)), None), Err(AuthError::InvalidToken(_))));
    for junk in ["Bearer", "Bearer a.b", "Bearer ...", "Basic YWxpY2U6c2VjcmV0", ""] {
        assert!(matches!(auth.authenticate(Some(junk), None), Err(AuthError::InvalidToken(_))), "{junk:?}");
    }
    assert_eq!(auth.authenticate(None, None), Err(AuthError::Missing));
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn rs256_and_es256_tokens_are_checked_against_the_key_set() {
    let (rsa, ec) = (rsa(), ec_key("test-only-ec.pem"));
    let path = jwks_file(vec![jwk(&rsa, Algorithm::RS256, "r1"), jwk(&ec, Algorithm::ES256, "e1")]);
    let auth = Authenticator::build(&config(&["--jwks", path.to_str().unwrap()])).await.expect("builds");
    let reader = claims(Role::Reader);
    for (key, algorithm, kid) in [(&rsa, Algorithm::RS256, "r1"), (&ec, Algorithm::ES256, "e1")] {
        let token = sign(key, algorithm, Some(kid), &reader);
        assert_eq!(auth.authenticate(Some(&bearer(&token)), None).unwrap().role, Role::Reader, "{algorithm:?}");
        // Without a key id, every key of the token's kind is tried.
        let token = sign(key, algorithm, None, &reader);
        assert!(auth.authenticate(Some(&bearer(&token)), None).is_ok(), "{algorithm:?} without kid");
    }
    // Another key claiming a known key id; a key id the set does not hold; an HS256 token while
    // no secret is configured (algorithm confusion with a public key as the secret).
    let other = sign(&ec_key("test-only-other-ec.pem"), Algorithm::ES256, Some("e1"), &reader);
    assert_eq!(auth.authenticate(Some(&bearer(&other)), None), Err(AuthError::InvalidToken("bad signature")));
    let unknown = sign(&ec_key("test-only-other-ec.pem"), Algorithm::ES256, Some("e9"), &reader);
    assert_eq!(
        auth.authenticate(Some(&bearer(&unknown)), None),
        Err(AuthError::InvalidToken("signed with an unknown key"))
    );
    let confused = dev::sign(&std::fs::read_to_string(&path).unwrap(), &reader).unwrap();
    assert_eq!(
        auth.authenticate(Some(&bearer(&confused)), None),
        Err(AuthError::InvalidToken("algorithm not accepted"))
    );
    // An RS256 key cannot verify a token that says ES256.
    let mislabelled = sign(&ec, Algorithm::ES256, Some("r1"), &reader);
    assert!(auth.authenticate(Some(&bearer(&mislabelled)), None).is_err());
    let _ = std::fs::remove_file(path);
}

/// Serves whatever `served` holds at the moment of each request; returns the set's URL.
async fn serve_jwks(served: &Arc<Mutex<JwkSet>>) -> String {
    let served = Arc::clone(served);
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let body = serde_json::to_string(&*served.lock().unwrap()).unwrap();
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn a_key_set_url_is_read_again_when_a_token_names_a_new_key() {
    let served = Arc::new(Mutex::new(JwkSet { keys: vec![jwk(&rsa(), Algorithm::RS256, "old")] }));
    let url = serve_jwks(&served).await;
    let auth = Authenticator::build(&config(&["--jwks", &url, "--jwks-refresh-secs", "3600"])).await.expect("builds");

    let rotated = ec_key("test-only-ec.pem");
    let token = bearer(&sign(&rotated, Algorithm::ES256, Some("new"), &claims(Role::Writer)));
    assert!(auth.authenticate(Some(&token), None).is_err(), "not published yet");
    served.lock().unwrap().keys.push(jwk(&rotated, Algorithm::ES256, "new"));
    assert!(auth.authenticate(Some(&token), None).is_err(), "asks for a re-read");
    platform::testing::eventually("the new key to be fetched", Duration::from_secs(20), || async {
        auth.authenticate(Some(&token), None).ok()
    })
    .await;
}

#[tokio::test]
async fn a_remembered_token_is_refused_once_it_expires() {
    // No leeway: a token for 2 s is taken (and remembered) now, and refused once expired.
    let auth = hs256(&["--jwt-leeway-secs", "0"]).await;
    let token = bearer(&dev::sign(SECRET, &Claims::new("alice", Role::Reader, Duration::from_secs(2))).unwrap());
    assert!(auth.authenticate(Some(&token), None).is_ok());
    assert!(auth.authenticate(Some(&token), None).is_ok(), "taken again while valid");
    platform::testing::eventually("the remembered token to be refused", Duration::from_secs(10), || async {
        (auth.authenticate(Some(&token), None) == Err(AuthError::Expired)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_remembered_token_is_refused_once_its_key_leaves_the_key_set() {
    let served = Arc::new(Mutex::new(JwkSet { keys: vec![jwk(&rsa(), Algorithm::RS256, "old")] }));
    let url = serve_jwks(&served).await;
    let auth = Authenticator::build(&config(&["--jwks", &url, "--jwks-refresh-secs", "1"])).await.expect("builds");

    let token = bearer(&sign(&rsa(), Algorithm::RS256, Some("old"), &claims(Role::Writer)));
    assert!(auth.authenticate(Some(&token), None).is_ok());
    // The key is withdrawn (a leak, a rotation); the set is read again every second.
    let replacement = ec_key("test-only-ec.pem");
    served.lock().unwrap().keys = vec![jwk(&replacement, Algorithm::ES256, "new")];
    platform::testing::eventually("the withdrawn key's token to be refused", Duration::from_secs(10), || async {
        auth.authenticate(Some(&token), None).is_err().then_some(())
    })
    .await;
}

#[tokio::test]
async fn api_keys_come_from_a_variable_and_a_file_and_only_their_hashes_are_configured() {
    let (etl, etl_entry) = api_keys::generate("etl", Role::Writer).unwrap();
    let (ops, ops_entry) = api_keys::generate("ops", Role::Admin).unwrap();
    let file = std::env::temp_dir().join(format!("{}.keys", platform::testing::unique("test")));
    std::fs::write(&file, format!("# operators\n{ops_entry}\n")).unwrap();
    let auth = Authenticator::build(&config(&["--api-keys", &etl_entry, "--api-keys-file", file.to_str().unwrap()]))
        .await
        .expect("builds");
    assert_eq!(auth.authenticate(None, Some(&etl)).unwrap(), Principal { id: "apikey:etl".into(), role: Role::Writer });
    assert_eq!(auth.authenticate(None, Some(&ops)).unwrap().role, Role::Admin);
    assert_eq!(auth.authenticate(None, Some("umk_guess")), Err(AuthError::InvalidKey));
    // A presented key wins over a token: a wrong key is refused even beside a valid token.
    let token = bearer(&dev::sign(SECRET, &claims(Role::Admin)).unwrap());
    assert_eq!(auth.authenticate(Some(&token), Some("umk_guess")), Err(AuthError::InvalidKey));
    assert!(!auth.describe().contains(&etl) && auth.describe().contains("2 API keys"), "{}", auth.describe());
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn without_any_configured_credential_the_gateway_cannot_start_unless_explicitly_open() {
    assert!(matches!(Authenticator::build(&config(&[])).await, Err(SetupError::NothingConfigured)));
    let short = config(&["--jwt-secret", "short"]);
    assert!(matches!(Authenticator::build(&short).await, Err(SetupError::Secret(_))));
    let open = Authenticator::build(&config(&["--auth-disabled"])).await.expect("explicitly disabled");
    assert!(open.is_disabled());
    assert_eq!(open.authenticate(None, None), Ok(Principal::anonymous()));
}

#[test]
fn a_development_secret_is_made_once_and_kept_private() {
    let path = std::env::temp_dir().join(platform::testing::unique("dev")).join("jwt-secret");
    let first = dev::secret_file(&path).unwrap();
    assert_eq!(first.len(), 64);
    assert_eq!(dev::secret_file(&path).unwrap(), first, "made once, then read");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
