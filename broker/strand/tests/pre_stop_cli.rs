//! `strand broker pre-stop`, run as the real binary against a fake broker HTTP port that
//! answers one request with a canned hand-over report.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::mpsc;
use std::thread;

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `strand broker pre-stop ARGS` with `env`, ignoring the caller's own settings.
fn pre_stop(args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(["broker", "pre-stop"])
        .args(args)
        .env_remove("STRAND_HTTP_ADDRESS")
        .env_remove("STRAND_PRE_STOP_TIMEOUT")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// A broker HTTP port that answers one request with `status` and `body`; the request line it
/// got arrives on the receiver.
fn fake_broker(status: &'static str, body: &'static str) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        // The rest of the head, up to the empty line.
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        let mut stream = reader.into_inner();
        write!(
            stream,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        tx.send(request_line.trim_end().to_owned()).unwrap();
    });
    (address, rx)
}

#[test]
fn pre_stop_asks_the_broker_and_prints_what_it_handed_over() {
    let (address, request) = fake_broker(
        "200 OK",
        r#"{"handed_over":12,"remaining":0,"without_other_voter":0,"deadline_passed":false,"still_leading":[]}"#,
    );
    let run = pre_stop(&["--http-address", &address, "--timeout", "5s"], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout,
        "handed over 12 leaderships; this broker leads nothing\n"
    );
    assert_eq!(
        request.recv().unwrap(),
        "POST /v1/pre-stop?timeout_ms=5000 HTTP/1.1"
    );
}

#[test]
fn leaderships_left_behind_are_reported_without_failing() {
    let (address, request) = fake_broker(
        "200 OK",
        r#"{"handed_over":1,"remaining":2,"without_other_voter":0,"deadline_passed":true,"still_leading":["orders-0","controller"]}"#,
    );
    // The address and the timeout from the environment, as the flags of `strand broker` can.
    let run = pre_stop(
        &[],
        &[
            ("STRAND_HTTP_ADDRESS", &address),
            ("STRAND_PRE_STOP_TIMEOUT", "1500ms"),
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout,
        "handed over 1 leadership; deadline passed: 2 leaderships not handed over (orders-0, controller)\n"
    );
    assert_eq!(
        request.recv().unwrap(),
        "POST /v1/pre-stop?timeout_ms=1500 HTTP/1.1"
    );
}

#[test]
fn a_broker_that_cannot_be_reached_fails_the_command() {
    // A port nobody listens on: bound, then released.
    let address = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let run = pre_stop(&["--http-address", &address], &[]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.starts_with(&format!(
            "error: cannot reach the broker's HTTP port at {address}: "
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn an_answer_that_is_not_a_hand_over_fails_the_command() {
    let (address, _request) = fake_broker("404 Not Found", "");
    let run = pre_stop(&["--http-address", &address], &[]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr.contains("answered `HTTP/1.1 404 Not Found`"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_malformed_timeout_is_refused_before_any_call() {
    let run = pre_stop(&["--timeout", "soon"], &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains("`soon` is not a duration such as 90s, 1500ms or 2m"),
        "{}",
        run.stderr
    );
}
