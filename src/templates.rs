//! The minijinja templates of the persistent configuration.
//!
//! The templates in the repository's `templates/` are embedded in the binary; `--templates DIR`
//! replaces any of them by file name.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

pub const SYSCTL_CONF: &str = "sysctl.conf.j2";
pub const IPVSADM_RULES: &str = "ipvsadm.rules.j2";
pub const SERVICE_UNIT: &str = "lvsctl.service.j2";
pub const STANDALONE_SCRIPT: &str = "lvsctl.sh.j2";
pub const MODULES_LOAD: &str = "modules-load.conf.j2";
pub const KEEPALIVED_CONF: &str = "keepalived.conf.j2";

const EMBEDDED: [(&str, &str); 6] = [
    (SYSCTL_CONF, include_str!("../templates/sysctl.conf.j2")),
    (IPVSADM_RULES, include_str!("../templates/ipvsadm.rules.j2")),
    (SERVICE_UNIT, include_str!("../templates/lvsctl.service.j2")),
    (STANDALONE_SCRIPT, include_str!("../templates/lvsctl.sh.j2")),
    (MODULES_LOAD, include_str!("../templates/modules-load.conf.j2")),
    (KEEPALIVED_CONF, include_str!("../templates/keepalived.conf.j2")),
];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read templates directory {dir}: {source}")]
    Dir { dir: PathBuf, source: std::io::Error },
    #[error("{path}: lvsctl uses no template of this name (it uses {known}); rename it or remove it")]
    Unknown { path: PathBuf, known: String },
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
}

/// The set of templates in use: embedded ones, some possibly replaced from a directory.
pub struct Templates {
    env: Environment<'static>,
    /// Which templates came from the override directory.
    pub overridden: Vec<PathBuf>,
}

fn template_error(name: &str, e: minijinja::Error) -> RenderError {
    let mut message = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        message.push_str(&format!(": {s}"));
        src = s.source();
    }
    RenderError::Template { name: name.to_string(), message }
}

/// Quotes a value for a POSIX shell: `'it'\''s'`.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-' | '_' | ':' | '=' | ','))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Templates {
    pub fn embedded() -> Templates {
        Self::load(None).expect("embedded templates are valid")
    }

    /// Embedded templates, with files of `dir` (if given) replacing them by name.
    pub fn load(dir: Option<&Path>) -> Result<Templates, RenderError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .keep_trailing_newline(true)
                .build()
                .expect("default delimiters are valid"),
        );
        // Any value (numbers too) quoted for a POSIX shell.
        env.add_filter("sq", |v: minijinja::Value| shell_quote(&v.to_string()));
        // For comments: one line, whatever the value holds (a newline would end the comment).
        env.add_filter("oneline", |v: minijinja::Value| {
            v.to_string().chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>()
        });
        for (name, src) in EMBEDDED {
            env.add_template(name, src).map_err(|e| template_error(name, e))?;
        }
        let mut overridden = Vec::new();
        if let Some(dir) = dir {
            let entries =
                std::fs::read_dir(dir).map_err(|source| RenderError::Dir { dir: dir.to_path_buf(), source })?;
            let mut paths: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
            paths.sort();
            for path in paths {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
                if !EMBEDDED.iter().any(|(n, _)| *n == name) {
                    let known = EMBEDDED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
                    return Err(RenderError::Unknown { path, known });
                }
                let src =
                    std::fs::read_to_string(&path).map_err(|source| RenderError::Dir { dir: path.clone(), source })?;
                env.add_template_owned(name.clone(), src)
                    .map_err(|e| template_error(&path.display().to_string(), e))?;
                overridden.push(path);
            }
        }
        Ok(Templates { env, overridden })
    }

    pub fn render(&self, name: &str, ctx: &impl Serialize) -> Result<String, RenderError> {
        let t = self.env.get_template(name).map_err(|e| template_error(name, e))?;
        t.render(minijinja::value::Serde(ctx)).map_err(|e| template_error(name, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("net.ipv4.conf.all.arp_ignore"), "net.ipv4.conf.all.arp_ignore");
        assert_eq!(shell_quote("192.168.1.1/32"), "192.168.1.1/32");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn unknown_override_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sysctl.conf"), "x").unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap().to_string();
        assert!(err.contains("lvsctl uses no template of this name"), "{err}");
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn sq_quotes_any_value_and_oneline_keeps_comments_on_one_line() {
        let t = Templates::embedded();
        let mut env = t.env.clone();
        env.add_template("t", "{{ a | sq }} {{ n | sq }} # {{ c | oneline }}").unwrap();
        let out = env
            .get_template("t")
            .unwrap()
            .render(minijinja::context! { a => "x'; rm -rf / #", n => 80, c => "web\nrm -rf /" })
            .unwrap();
        assert_eq!(out, "'x'\\''; rm -rf / #' 80 # web rm -rf /");
    }
}
