//! docker-compose.yml and the code agree: every service in it runs one of our binaries, every
//! environment variable it sets is a setting that binary reads, every published port is one the
//! binary listens on, healthchecks ask the admin port, and Kafka is the version the local
//! scripts run. Also: every setting of every service is documented in the README.
//! (`just compose-check` validates the file's syntax with docker compose itself.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clap::{Args, Command, CommandFactory};
use platform::CommonConfig;
use platform::registry::RegistryConfig;
use serde_yaml_ng::Value;

/// Variables read by libraries rather than by our config structs.
const LIBRARY_VARIABLES: [&str; 1] = ["RUST_LOG"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).expect("docker-compose.yml");
    let mut value: Value = serde_yaml_ng::from_str(&text).expect("valid YAML");
    value.apply_merge().expect("merge keys resolve");
    // Merged mappings can contain merge keys of their own (x-service-env merges another anchor).
    for (_, service) in value["services"].as_mapping_mut().expect("services").iter_mut() {
        service.apply_merge().expect("merge keys resolve");
        if let Some(env) = service.get_mut("environment") {
            env.apply_merge().expect("merge keys resolve");
        }
    }
    value
}

fn variables(command: Command) -> BTreeSet<String> {
    command.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()).collect()
}

/// Our binaries and the environment variables each reads.
fn binaries() -> BTreeMap<&'static str, BTreeSet<String>> {
    // The topics tool reads exactly the settings every service shares.
    let topics = variables(CommonConfig::augment_args(Command::new("topics")));
    BTreeMap::from([
        ("api-gateway", variables(api_gateway::Config::command())),
        ("user-service", variables(user_service::Config::command())),
        ("import-worker", variables(import_worker::Config::command())),
        ("export-worker", variables(export_worker::Config::command())),
        ("topics", topics),
    ])
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, found {other:?}"),
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or_else(|| panic!("no port in {addr}"))
}

#[test]
fn every_service_variable_and_port_in_compose_exists_in_the_code() {
    let compose = compose();
    let binaries = binaries();
    let mut seen = BTreeSet::new();
    for (name, service) in compose["services"].as_mapping().expect("services") {
        let name = name.as_str().expect("service name");
        if service["image"].as_str() != Some("usermgmt:latest") {
            continue; // Kafka, the registry and kafka-ui are configured by their own images.
        }
        let command = service["command"][0].as_str().unwrap_or_else(|| panic!("{name}: no command"));
        let reads = binaries.get(command).unwrap_or_else(|| panic!("{name} runs {command}, which is not our binary"));
        seen.insert(command);

        let env = service["environment"].as_mapping().unwrap_or_else(|| panic!("{name}: no environment"));
        let mut listens = BTreeSet::new();
        for (key, value) in env {
            let key = key.as_str().expect("variable name");
            assert!(
                reads.contains(key) || LIBRARY_VARIABLES.contains(&key),
                "{name} sets {key}, which {command} does not read (known: {reads:?})"
            );
            // Admin listeners (health, readiness, metrics, digests) stay on the compose network.
            if key.ends_with("_ADDR") && !key.ends_with("_ADMIN_ADDR") {
                listens.insert(port_of(&text(value)));
            }
        }

        let published: BTreeSet<u16> = service["ports"]
            .as_sequence()
            .map(|ports| ports.iter().map(|p| port_of(&text(p))).collect())
            .unwrap_or_default();
        assert_eq!(published, listens, "{name}: the published ports are its public ports (no admin port)");

        if let Some(test) = service["healthcheck"]["test"].as_sequence() {
            let url = test.iter().map(text).find(|t| t.starts_with("http")).expect("a health URL");
            let port = port_of(url.trim_end_matches("/ready").trim_start_matches("http://"));
            let admin = env.iter().find(|(k, _)| k.as_str().is_some_and(|k| k.ends_with("ADMIN_ADDR")));
            let admin = admin.map(|(_, v)| port_of(&text(v))).unwrap_or_else(|| panic!("{name}: no admin address"));
            assert_eq!(port, admin, "{name}: the healthcheck asks the admin port");
        }
    }
    assert_eq!(seen, binaries.keys().copied().collect(), "every binary runs in compose");
}

/// What `docker compose config` says each service publishes, as `host_ip:published`.
fn published_by_compose_config() -> BTreeMap<String, Vec<String>> {
    let run = |program: &str, args: &[&str]| {
        std::process::Command::new(program).args(args).current_dir(root()).env_remove("PUBLISH_ADDR").output().ok()
    };
    let secrets = run("bash", &["deploy/compose-secrets.sh"]).expect("bash runs");
    assert!(secrets.status.success(), "{}", String::from_utf8_lossy(&secrets.stderr));
    // With the optional profile, so its services are checked too.
    let args = ["-f", "docker-compose.yml", "--profile", "tracing", "config"];
    let output = run("docker", &[&["compose"][..], &args].concat())
        .filter(|o| o.status.success())
        .or_else(|| run("docker-compose", &args))
        .expect("docker compose or docker-compose (deploy/bootstrap.sh installs it)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let config: Value = serde_yaml_ng::from_slice(&output.stdout).expect("compose config prints YAML");
    let mut published = BTreeMap::new();
    for (name, service) in config["services"].as_mapping().expect("services") {
        let ports = service["ports"].as_sequence().cloned().unwrap_or_default();
        let ports = ports
            .iter()
            .map(|port| match port {
                // Short syntax: host_ip:published:target[/protocol].
                Value::String(short) => short.rsplit_once(':').map(|(host, _)| host.to_owned()).unwrap_or_default(),
                // Long syntax (newer compose): host_ip and published fields.
                long => format!("{}:{}", long["host_ip"].as_str().unwrap_or("0.0.0.0"), text(&long["published"])),
            })
            .collect();
        published.insert(name.as_str().expect("a name").to_owned(), ports);
    }
    published
}

#[test]
fn only_the_api_and_kafka_ui_are_published_and_only_on_loopback_by_default() {
    let published = published_by_compose_config();
    // Jaeger's UI (profile `tracing`) too.
    let expected = BTreeMap::from([
        ("api-gateway", "127.0.0.1:8000"),
        ("kafka-ui", "127.0.0.1:8080"),
        ("jaeger", "127.0.0.1:16686"),
    ]);
    for (service, ports) in &published {
        match expected.get(service.as_str()) {
            Some(port) => assert_eq!(ports, &vec![port.to_string()], "{service}"),
            None => assert!(ports.is_empty(), "{service} publishes {ports:?}: only the API and kafka-ui may"),
        }
    }
    for service in ["kafka-1", "schema-registry", "jaeger"] {
        assert!(published.contains_key(service), "{service} missing: {published:?}");
    }
}

#[test]
fn kafka_ui_is_read_only_and_behind_a_login_from_an_env_file() {
    let compose = compose();
    let ui = &compose["services"]["kafka-ui"];
    assert_eq!(ui["environment"]["KAFKA_CLUSTERS_0_READONLY"].as_str(), Some("true"));
    let env_file = ui["env_file"].as_str().expect("an env file");
    let login = std::fs::read_to_string(root().join(env_file)).expect("made by deploy/compose-secrets.sh");
    assert!(login.contains("AUTH_TYPE=LOGIN_FORM") && login.contains("SPRING_SECURITY_USER_PASSWORD="), "{login}");
    let password = login.lines().find_map(|l| l.strip_prefix("SPRING_SECURITY_USER_PASSWORD=")).unwrap_or_default();
    assert!(password.len() >= 32, "a random password, not a default");
}

#[test]
fn compose_runs_the_kafka_version_of_the_local_scripts() {
    let pom = std::fs::read_to_string(root().join("deploy/kafka/pom.xml")).expect("pom.xml");
    let version = pom.split("<kafka.version>").nth(1).and_then(|v| v.split('<').next()).expect("kafka.version");
    let compose = compose();
    for broker in ["kafka-1", "kafka-2", "kafka-3"] {
        assert_eq!(compose["services"][broker]["image"].as_str(), Some(format!("apache/kafka:{version}").as_str()));
    }
}

#[test]
fn the_readme_documents_every_setting() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut all: BTreeSet<String> = binaries().into_values().flatten().collect();
    all.extend(variables(RegistryConfig::augment_args(Command::new("registry"))));
    let missing: Vec<&String> = all.iter().filter(|v| !readme.contains(&format!("`{v}`"))).collect();
    assert!(missing.is_empty(), "settings missing from the README: {missing:?}");
}

#[test]
fn the_image_is_built_by_the_commands_ci_runs_and_holds_every_binary_compose_runs() {
    let read = |path: &str| std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (dockerfile, ci, justfile, script) =
        (read("deploy/Dockerfile"), read(".ci/run"), read("justfile"), read("deploy/build-release.sh"));
    assert!(dockerfile.contains("deploy/build-release.sh"), "the image builds with deploy/build-release.sh");
    assert!(dockerfile.contains("deploy/apt-build.txt"), "the image installs deploy/apt-build.txt");
    assert!(read("deploy/bootstrap.sh").contains("deploy/apt-build.txt"), "CI installs the same packages");
    assert!(ci.lines().any(|l| l.trim_start().starts_with("just build")), ".ci/run runs `just build`");
    assert!(justfile.contains("build:\n    deploy/build-release.sh"), "`just build` runs deploy/build-release.sh");
    // Cargo needs every workspace member to build any of them.
    let manifest = read("Cargo.toml");
    let members = manifest.lines().find(|l| l.starts_with("members = [")).expect("the workspace members");
    for dir in members.split('"').skip(1).step_by(2).map(|m| m.trim_end_matches("/*")) {
        assert!(dockerfile.contains(&format!("COPY {dir} {dir}")), "the image lacks workspace member dir {dir}");
    }
    let binaries = script.lines().find(|l| l.starts_with("binaries=(")).expect("the binaries the script copies");
    for name in binaries_in_compose() {
        assert!(binaries.split([' ', '(', ')']).any(|b| b == name), "the image lacks {name}, which compose runs");
    }
}

fn binaries_in_compose() -> BTreeSet<String> {
    let compose = compose();
    compose["services"]
        .as_mapping()
        .expect("services")
        .values()
        .filter(|s| s["image"].as_str() == Some("usermgmt:latest"))
        .filter_map(|s| s["command"][0].as_str().map(str::to_owned))
        .collect()
}
