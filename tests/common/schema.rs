//! Every `--output json` a test reads is checked against the schema `lvsctl schema` generates
//! from the types the same binary serializes: the contract is tested where the JSON is used.

use std::path::Path;
use std::process::Command;

/// The schema of `command`'s JSON (or `events` for jsonl lines), from `bin` itself.
pub fn of(bin: &Path, command: &str) -> serde_json::Value {
    let out = Command::new(bin).args(["schema", command]).output().expect("run lvsctl schema");
    assert!(out.status.success(), "lvsctl schema {command}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the schema is JSON")
}

/// Each command's validator, compiled once per test process: the schema comes from a process and
/// its compilation is slow in an unoptimised test build, and a scenario parses dozens of documents.
fn validator(bin: &Path, command: &str) -> std::sync::Arc<jsonschema::Validator> {
    type Cache = std::sync::Mutex<
        std::collections::HashMap<(std::path::PathBuf, String), std::sync::Arc<jsonschema::Validator>>,
    >;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let key = (bin.to_path_buf(), command.to_string());
    if let Some(v) = CACHE.get_or_init(Default::default).lock().unwrap().get(&key) {
        return v.clone();
    }
    let schema = of(bin, command);
    let compiled =
        std::sync::Arc::new(jsonschema::validator_for(&schema).expect("the generated schema is a valid JSON Schema"));
    CACHE.get_or_init(Default::default).lock().unwrap().insert(key, compiled.clone());
    compiled
}

/// Fails the test, naming every violation, when `doc` is not what `command`'s schema allows.
pub fn assert_valid(bin: &Path, command: &str, doc: &serde_json::Value) {
    let validator = validator(bin, command);
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{command} --output json breaks its schema:\n{}\n{doc:#}", errors.join("\n"));
}

/// Parses a command's stdout as one JSON document and checks it against its schema.
pub fn parse(bin: &Path, command: &str, stdout: &[u8]) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("{command} --output json is not JSON ({e}):\n{}", String::from_utf8_lossy(stdout)));
    assert_valid(bin, command, &doc);
    doc
}
