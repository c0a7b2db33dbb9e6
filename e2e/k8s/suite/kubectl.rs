//! The suite's hands on the cluster: `kubectl` as a user runs it, and waits for conditions
//! with a deadline instead of sleeps.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Runs `kubectl` with `args` and returns its standard output; an error carries its standard
/// error.
pub fn try_kubectl(args: &[&str]) -> Result<String, String> {
    try_kubectl_with_input(args, None)
}

/// Runs `kubectl` with `args`, giving it `input` on standard input.
pub fn try_kubectl_with_input(args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run kubectl: {e}"))?;
    if let Some(input) = input {
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(input.as_bytes())
            .map_err(|e| format!("cannot write to kubectl: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("kubectl failed: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Runs `kubectl`; a failure fails the journey.
pub fn kubectl(args: &[&str]) -> String {
    try_kubectl(args).unwrap_or_else(|e| panic!("{e}"))
}

/// `kubectl apply --server-side` of a YAML document, as a GitOps tool or a user would.
pub fn apply(yaml: &str) -> String {
    try_apply(yaml).unwrap_or_else(|e| panic!("{e}"))
}

/// `kubectl apply --server-side`, returning the API server's refusal as an error.
pub fn try_apply(yaml: &str) -> Result<String, String> {
    // As GitOps tools apply: the documents win over edits made by other means.
    try_kubectl_with_input(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=e2e-user",
            "-f",
            "-",
        ],
        Some(yaml),
    )
}

/// An object as JSON, or `None` when it does not exist.
pub fn get(namespace: &str, kind: &str, name: &str) -> Option<Value> {
    match try_kubectl(&["get", "-n", namespace, kind, name, "-o", "json"]) {
        Ok(text) => Some(serde_json::from_str(&text).expect("kubectl prints JSON")),
        Err(error) if error.contains("NotFound") || error.contains("not found") => None,
        Err(error) => panic!("{error}"),
    }
}

/// Every object of `kind` in `namespace` matching `selector` (empty for all).
pub fn list(namespace: &str, kind: &str, selector: &str) -> Vec<Value> {
    let mut args = vec!["get", "-n", namespace, kind, "-o", "json"];
    if !selector.is_empty() {
        args.extend(["-l", selector]);
    }
    let text = kubectl(&args);
    let list: Value = serde_json::from_str(&text).expect("kubectl prints JSON");
    list["items"].as_array().cloned().unwrap_or_default()
}

/// The condition `kind` of an object's status, if it has one.
pub fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// Whether condition `kind` is `True` for the object's current generation.
pub fn condition_true(object: &Value, kind: &str) -> bool {
    condition(object, kind).is_some_and(|c| {
        c["status"] == "True" && c["observedGeneration"] == object["metadata"]["generation"]
    })
}

/// Polls `check` every half second until it returns `Some`, for at most `limit`; on timeout
/// the journey fails with `what` and the last thing `describe` said.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let last = match check() {
            Ok(value) => return value,
            Err(said) => said,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}; last seen: {last}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Events of the object named `name` in `namespace`, as `reason: message` lines.
pub fn events_of(namespace: &str, name: &str) -> Vec<String> {
    let text = kubectl(&[
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        &format!("involvedObject.name={name}"),
        "-o",
        "json",
    ]);
    let list: Value = serde_json::from_str(&text).expect("kubectl prints JSON");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{}: {}",
                e["reason"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}
