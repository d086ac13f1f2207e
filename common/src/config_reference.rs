//! The configuration reference, generated from the binaries' own clap definitions:
//! every environment variable, its default, its meaning and which binary reads it.
//! `api config-reference` and `consumer config-reference` print a binary's rows;
//! `docs/src/configuration.md` is the merged table (a test fails when it is stale).

use std::collections::BTreeMap;

/// One variable as a binary reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub env: String,
    pub flag: String,
    pub default: Option<String>,
    pub help: String,
    pub secret: bool,
}

/// Every argument of `command` that has an environment variable, sorted by name.
pub fn settings(command: &clap::Command) -> Vec<Setting> {
    let mut out: Vec<Setting> = command
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_string_lossy().into_owned();
            let default = match arg.get_default_values() {
                [] => None,
                values => Some(
                    values
                        .iter()
                        .map(|v| v.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            };
            let help = arg
                .get_long_help()
                .or_else(|| arg.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            Some(Setting {
                env,
                flag: arg.get_long().map(|l| format!("--{l}")).unwrap_or_default(),
                default,
                help: help.split_whitespace().collect::<Vec<_>>().join(" "),
                secret: arg.is_hide_env_values_set(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.env.cmp(&b.env));
    out.dedup_by(|a, b| a.env == b.env);
    out
}

/// A binary's rows as a Markdown table.
pub fn markdown_for(binary: &str, settings: &[Setting]) -> String {
    markdown(&[(binary, settings.to_vec())])
}

/// One table over several binaries: a variable both read is one row naming both (its
/// meaning from the first that documents it).
pub fn markdown(binaries: &[(&str, Vec<Setting>)]) -> String {
    let mut rows: BTreeMap<String, (Vec<&str>, Setting)> = BTreeMap::new();
    for (binary, settings) in binaries {
        for s in settings {
            let entry = rows
                .entry(s.env.clone())
                .or_insert_with(|| (Vec::new(), s.clone()));
            entry.0.push(binary);
            if entry.1.help.is_empty() {
                entry.1.help.clone_from(&s.help);
            }
        }
    }
    let mut out = String::from("| variable | read by | default | meaning |\n|---|---|---|---|\n");
    for (env, (readers, s)) in rows {
        let default = match (&s.default, s.secret) {
            (_, true) if s.default.as_deref().is_none_or(str::is_empty) => {
                "unset (secret)".to_owned()
            }
            (Some(d), _) if d.is_empty() => "empty".to_owned(),
            (Some(d), _) => format!("`{d}`"),
            (None, _) => "unset".to_owned(),
        };
        out.push_str(&format!(
            "| `{env}` | {} | {default} | {} |\n",
            readers.join(", "),
            escape(&s.help)
        ));
    }
    out
}

/// `docs/src/configuration.md`: the merged table between what every variable shares.
pub fn page(binaries: &[(&str, Vec<Setting>)]) -> String {
    format!(
        "# Configuration reference\n\n\
         <!-- Generated from the binaries' clap definitions: `make config-reference` \
         rewrites this file, and a test fails when it is stale. -->\n\n\
         Both binaries read their settings from the environment, or from a `.env` file in \
         the working directory (real variables win). A missing or malformed value stops the \
         binary with exit code 2 and a message naming the variable, never its value. Every \
         variable is also a command-line option of the same name in kebab case \
         (`DATABASE_URL` is `--database-url`); `api config-reference` and \
         `consumer config-reference` print one binary's table.\n\n\
         Secrets (marked *secret*) are never logged or printed. Keys: `api keygen` prints \
         new ones as `.env` lines (the sealing pair, the record-signing keys, the JWT and \
         MFA keys). `api migrate` applies the migrations and exits (serialised by a \
         PostgreSQL advisory lock, so several replicas may start at once).\n\n{}",
        markdown(binaries)
    )
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    #[test]
    fn variables_both_binaries_read_are_one_row_naming_both() {
        let a = Command::new("a")
            .arg(
                Arg::new("x")
                    .long("x")
                    .env("X_URL")
                    .default_value("d")
                    .help("Where | how."),
            )
            .arg(
                Arg::new("y")
                    .long("y")
                    .env("Y_KEY")
                    .hide_env_values(true)
                    .help("A key."),
            );
        let b = Command::new("b").arg(Arg::new("x").long("x").env("X_URL").help(""));
        let table = markdown(&[("api", settings(&a)), ("consumer", settings(&b))]);
        assert!(
            table.contains("| `X_URL` | api, consumer | `d` | Where \\| how. |"),
            "{table}"
        );
        assert!(
            table.contains("| `Y_KEY` | api | unset (secret) | A key. |"),
            "{table}"
        );
    }
}
