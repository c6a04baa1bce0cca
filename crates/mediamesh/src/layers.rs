//! The one config layer of every role: a role's settings are one struct that clap reads
//! as flags and serde reads as the TOML file given with `--config`, so a flag and its
//! file key cannot drift apart. Precedence, highest first: a flag on the command line,
//! an environment variable `MEDIAMESH_<FLAG>` (the flag's long name upper-cased, `-`
//! as `_`, as MediaMTX and container platforms expect), a key of the file (the flag's
//! long name with `_` for `-`), the default written once on the flag
//! (`default_value_t`, usually taken from the library's own config defaults).
//!
//! Not here: what the settings mean. Each role's module turns its struct into the
//! library's config type, whose `validate()` judges the values.
//!
//! Written here rather than taken from figment or config-rs: both layer files and
//! environment well, but neither knows which of clap's values came from a default, so
//! a default would hide the file's key; clap's `value_source` answers that directly.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Command};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Prefix of the environment variables that set flags.
pub const ENV_PREFIX: &str = "MEDIAMESH_";

/// The environment variable of a flag's long name.
pub fn env_name(long: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        long.to_ascii_uppercase().replace('-', "_")
    )
}

/// Gives every long flag of `cmd` and its subcommands an environment variable
/// (`--config` too, so a container can point at its file). Help and version stay
/// flags only.
pub fn with_env(cmd: Command) -> Command {
    let cmd = cmd.mut_args(|a| match a.get_long() {
        Some(long) if long != "help" && long != "version" => {
            let name = env_name(long);
            a.env(name)
        }
        _ => a,
    });
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    names
        .iter()
        .fold(cmd, |cmd, n| cmd.mut_subcommand(n, with_env))
}

/// File key → argument id for every flag (and positional) of a role, `--config` left
/// out. Keys are long names with `_` for `-`; positionals go by their id.
fn file_keys(cmd: &Command) -> BTreeMap<String, String> {
    cmd.get_arguments()
        .filter(|a| a.get_id() != "config")
        .map(|a| {
            let id = a.get_id().to_string();
            let key = a
                .get_long()
                .map_or_else(|| id.clone(), |l| l.replace('-', "_"));
            (key, id)
        })
        .collect()
}

/// A role's settings after layering: `parsed` holds what clap read (flags, environment
/// and defaults); keys of the file at `file` replace the values that came from a
/// default or were not given. `aliases` name older file keys (old key, current key).
pub fn resolve<T>(
    parsed: T,
    cmd: &Command,
    matches: &ArgMatches,
    file: Option<&Path>,
    aliases: &[(&str, &str)],
) -> Result<T>
where
    T: Serialize + DeserializeOwned,
{
    let Some(path) = file else {
        return Ok(parsed);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
    overlay(parsed, cmd, matches, table, aliases)
        .with_context(|| format!("config file {}", path.display()))
}

fn overlay<T>(
    parsed: T,
    cmd: &Command,
    matches: &ArgMatches,
    table: toml::Table,
    aliases: &[(&str, &str)],
) -> Result<T>
where
    T: Serialize + DeserializeOwned,
{
    let keys = file_keys(cmd);
    let base = toml::Table::try_from(&parsed).context("settings do not form a TOML table")?;
    let mut merged = base.clone();
    for (key, value) in table {
        let key = aliases
            .iter()
            .find(|(old, _)| *old == key)
            .map_or(key.as_str(), |(_, new)| *new)
            .to_string();
        let Some(id) = keys.get(&key) else {
            let known: Vec<&str> = keys.keys().map(String::as_str).collect();
            bail!(
                "unknown key `{key}`; keys are the flags of `mediamesh {}` with `_` for `-`: {}",
                cmd.get_name(),
                known.join(", ")
            );
        };
        let given = matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if !given {
            // Checked one key at a time, so an error names its key.
            let mut alone = base.clone();
            alone.insert(id.clone(), value.clone());
            if let Err(e) = toml::Value::Table(alone).try_into::<T>() {
                bail!("key `{key}`: {}", e.message());
            }
            merged.insert(id.clone(), value);
        }
    }
    toml::Value::Table(merged)
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.message()))
}

/// One role's settings: what clap read (`sub` is the role's command, `m` its
/// matches), then the role's `--config` file under it.
pub fn role<T>(sub: &Command, m: &ArgMatches, aliases: &[(&str, &str)]) -> Result<T>
where
    T: clap::FromArgMatches + Serialize + DeserializeOwned,
{
    let parsed = T::from_arg_matches(m)?;
    let file = m
        .try_get_one::<std::path::PathBuf>("config")
        .ok()
        .flatten()
        .cloned();
    resolve(parsed, sub, m, file.as_deref(), aliases)
}

/// Tests: a role's settings from its flags alone (`argv` without program or role
/// name), read as `main` reads them.
#[cfg(test)]
pub fn read<T>(argv: &[&str], aliases: &[(&str, &str)]) -> Result<T>
where
    T: clap::Args + clap::FromArgMatches + Serialize + DeserializeOwned,
{
    let cmd = with_env(T::augment_args(Command::new("role")));
    let m = cmd
        .clone()
        .try_get_matches_from(std::iter::once("role").chain(argv.iter().copied()))?;
    role(&cmd, &m, aliases)
}

/// A duration flag in seconds, checked to be a number in `min..=max`.
pub fn seconds(name: &str, value: f64, min: f64, max: f64) -> Result<std::time::Duration> {
    if !(value.is_finite() && value >= min && value <= max) {
        bail!("--{name} must be between {min} and {max} seconds, got {value}");
    }
    Ok(std::time::Duration::from_secs_f64(value))
}

/// `--tls-cert` and `--tls-key` together or not at all.
pub fn tls_pair(
    cert: Option<std::path::PathBuf>,
    key: Option<std::path::PathBuf>,
) -> Result<Option<(std::path::PathBuf, std::path::PathBuf)>> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some((c, k))),
        (None, None) => Ok(None),
        _ => bail!("--tls-cert and --tls-key go together"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, CommandFactory, FromArgMatches, Parser};
    use serde::Deserialize;

    #[derive(Parser, Debug, Serialize, Deserialize, Default)]
    struct Demo {
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 2.0)]
        segment_target: f64,
        #[arg(long = "publish-key")]
        publish_keys: Vec<String>,
        #[arg(long)]
        demo: bool,
        #[arg(long)]
        region: Option<String>,
    }

    fn parse(argv: &[&str], file: &str) -> Result<Demo> {
        let cmd = with_env(Demo::command());
        let m = cmd.clone().try_get_matches_from(argv)?;
        let parsed = Demo::from_arg_matches(&m)?;
        let table: toml::Table = toml::from_str(file)?;
        overlay(parsed, &cmd, &m, table, &[("publish_keys", "publish_key")])
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let d = parse(
            &["x", "--region", "eu"],
            "segment_target = 4\nregion = \"us\"\ndemo = true\npublish_keys = [\"a=b\"]\n",
        )
        .expect("layers");
        assert_eq!(d.segment_target, 4.0);
        assert_eq!(d.region.as_deref(), Some("eu"));
        assert!(d.demo);
        assert_eq!(d.publish_keys, vec!["a=b".to_string()]);
        let d = parse(&["x", "--segment-target", "1"], "segment_target = 4\n").expect("layers");
        assert_eq!(d.segment_target, 1.0);
    }

    #[test]
    fn unknown_and_mistyped_keys_are_refused_with_their_name() {
        let e = parse(&["x"], "segment_targt = 4\n").expect_err("unknown");
        assert!(e.to_string().contains("segment_targt"), "{e}");
        assert!(e.to_string().contains("segment_target"), "{e}");
        let e = parse(&["x"], "segment_target = \"long\"\n").expect_err("type");
        assert!(e.to_string().contains("segment_target"), "{e}");
        assert!(parse(&["x"], "config = \"other.toml\"\n").is_err());
    }

    #[test]
    fn every_flag_gets_an_environment_variable() {
        let cmd = with_env(Demo::command());
        let envs: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        assert!(envs.contains(&"MEDIAMESH_SEGMENT_TARGET".to_string()));
        assert!(envs.contains(&"MEDIAMESH_PUBLISH_KEY".to_string()));
        assert_eq!(
            env_name("max-http-connections"),
            "MEDIAMESH_MAX_HTTP_CONNECTIONS"
        );
        // The derive is the same one the roles use.
        let _ = <Demo as Args>::augment_args(Command::new("y"));
    }
}
