//! The deployment files in `deploy/` are checked against the binary: every
//! `mediamesh` command line in the docker-compose file, the Kubernetes manifests and
//! the systemd unit names a real subcommand and only flags that subcommand has
//! (`mediamesh SUB --help`), and the TOML files in the ConfigMap load with
//! `--config` (keys named like flags).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::run;
use serde::Deserialize as _;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn help(sub: &str) -> String {
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_mediamesh")).args([sub, "--help"]),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "mediamesh {sub} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Checks one `mediamesh …` argument vector.
fn check_command(source: &str, argv: &[String]) {
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (bin, rest) = argv.split_first().expect("empty command");
    assert!(
        bin.ends_with("mediamesh"),
        "{source}: command {bin} is not mediamesh"
    );
    let (sub, flags) = rest.split_first().expect("no subcommand");
    assert!(
        ["serve", "origin", "edge", "router", "tracker"].contains(sub),
        "{source}: unknown subcommand {sub}"
    );
    let text = help(sub);
    for f in flags.iter().filter(|f| f.starts_with("--")) {
        let name = f.split('=').next().unwrap_or(f);
        assert!(
            text.contains(&format!("{name} ")) || text.contains(&format!("{name}\n")),
            "{source}: `mediamesh {sub}` has no flag {name}"
        );
    }
}

fn strings(v: &serde_yaml::Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_commands_exist_in_the_cli() {
    let text = std::fs::read_to_string(deploy().join("docker-compose.yml")).expect("compose file");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("compose YAML parses");
    let services = doc["services"].as_mapping().expect("services");
    let mut roles = Vec::new();
    for (name, svc) in services {
        let name = name.as_str().unwrap_or("?");
        let cmd = strings(&svc["command"]);
        if svc["image"].as_str() == Some("mediamesh:latest") {
            check_command(&format!("compose service {name}"), &cmd);
            roles.push(cmd[1].clone());
        }
    }
    for r in ["origin", "edge", "router", "tracker"] {
        assert!(roles.iter().any(|x| x == r), "compose file runs no {r}");
    }
    assert!(services.contains_key("redis"), "compose file has no redis");
}

#[test]
fn kubernetes_manifests_are_well_formed_and_use_real_flags() {
    let dir = deploy().join("k8s");
    let mut kinds = Vec::new();
    let mut config_files: Vec<(String, String)> = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("k8s folder") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = serde_yaml::Value::deserialize(doc).expect("YAML parses");
            let kind = v["kind"].as_str().expect("kind").to_string();
            assert!(
                v["apiVersion"].as_str().is_some(),
                "{path:?}: no apiVersion"
            );
            assert!(
                v["metadata"]["name"].as_str().is_some(),
                "{path:?}: no name"
            );
            if kind == "ConfigMap" {
                for (k, body) in v["data"].as_mapping().expect("data") {
                    config_files.push((
                        k.as_str().expect("key").to_string(),
                        body.as_str().expect("text").to_string(),
                    ));
                }
            }
            if ["Deployment", "DaemonSet", "StatefulSet"].contains(&kind.as_str()) {
                let labels = &v["spec"]["selector"]["matchLabels"];
                assert_eq!(
                    labels, &v["spec"]["template"]["metadata"]["labels"],
                    "{path:?}: selector does not match the pod labels"
                );
                for c in v["spec"]["template"]["spec"]["containers"]
                    .as_sequence()
                    .expect("containers")
                {
                    let mut argv = strings(&c["command"]);
                    argv.extend(strings(&c["args"]));
                    if c["image"].as_str() == Some("mediamesh:latest") {
                        check_command(&format!("{path:?}"), &argv);
                    }
                }
            }
            kinds.push(kind);
        }
    }
    for k in ["ConfigMap", "Deployment", "DaemonSet", "Service"] {
        assert!(kinds.iter().any(|x| x == k), "no {k} in deploy/k8s");
    }
    // The ConfigMap's TOML files are valid configs of their role.
    let tmp = tempfile::tempdir().expect("tempdir");
    for (name, body) in &config_files {
        let role = name.trim_end_matches(".toml");
        let path = tmp.path().join(name);
        std::fs::write(&path, body).expect("write");
        let parsed: toml::Value = toml::from_str(body).expect("TOML parses");
        let text = help(role);
        for key in parsed.as_table().expect("table").keys() {
            let flag = format!("--{}", key.replace('_', "-"));
            assert!(
                text.contains(&flag),
                "{name}: key {key} is no flag of mediamesh {role}"
            );
        }
    }
}

#[test]
fn systemd_unit_runs_a_role_with_its_config() {
    let text = std::fs::read_to_string(deploy().join("systemd/mediamesh@.service")).expect("unit");
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert!(argv[0].ends_with("/mediamesh"));
    assert_eq!(argv[1], "%i");
    assert_eq!(argv[2], "--config");
    for role in ["origin", "edge", "router"] {
        assert!(help(role).contains("--config"), "{role} has no --config");
    }
    for section in ["[Unit]", "[Service]", "[Install]"] {
        assert!(text.contains(section), "unit lacks {section}");
    }
}
