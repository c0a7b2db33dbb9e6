//! `strand broker pre-stop`: asks the broker on this host, through its HTTP port, to hand every
//! leadership it holds to other brokers before it stops, and prints what it did in one line.
//!
//! The operator's StatefulSet runs it as the broker container's preStop hook. It fails only when
//! the broker cannot be reached or answers something else than a hand-over: leaderships left
//! behind are reported, not an error, because SIGTERM follows anyway and the broker's own
//! hand-over then tries again.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use strand_server::HandOver;

/// How long to wait for the TCP connection to the broker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much longer than the hand-over's own timeout to wait for the broker's answer.
const ANSWER_MARGIN: Duration = Duration::from_secs(15);
/// The largest answer read; a hand-over report is a few hundred bytes.
const ANSWER_BYTES_MAX: u64 = 1 << 20;

/// Options of `strand broker pre-stop`. Every flag can also be set by the environment variable
/// named.
#[derive(Debug, Args)]
pub struct PreStopArgs {
    /// The broker's HTTP address; a pod reaches its own broker on 127.0.0.1.
    #[arg(
        long,
        env = "STRAND_HTTP_ADDRESS",
        default_value = "127.0.0.1:9644",
        value_name = "HOST:PORT"
    )]
    http_address: String,
    /// How long the broker may take to hand its leaderships over: `90s`, `1500ms`, `2m`.
    #[arg(
        long,
        env = "STRAND_PRE_STOP_TIMEOUT",
        default_value = "90s",
        value_parser = parse_duration
    )]
    timeout: Duration,
}

/// Runs `strand broker pre-stop`.
pub fn run(args: PreStopArgs) -> anyhow::Result<()> {
    let report = request(&args.http_address, args.timeout)?;
    println!("{}", summary(&report));
    Ok(())
}

/// Sends `POST /v1/pre-stop` and reads the broker's report. HTTP/1.1 by hand: one request with
/// no body, answered with a short JSON body and the connection closed, needs no client library.
fn request(address: &str, timeout: Duration) -> anyhow::Result<HandOver> {
    let unreachable = || format!("cannot reach the broker's HTTP port at {address}");
    let addrs: Vec<_> = address
        .to_socket_addrs()
        .with_context(unreachable)?
        .collect();
    let mut last_error = None;
    let mut stream = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some(mut stream) = stream else {
        return Err(match last_error {
            Some(e) => anyhow::Error::new(e).context(unreachable()),
            None => anyhow::anyhow!("{}: the address resolves to nothing", unreachable()),
        });
    };
    stream.set_read_timeout(Some(timeout + ANSWER_MARGIN))?;
    let request = format!(
        "POST /v1/pre-stop?timeout_ms={} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        timeout.as_millis()
    );
    stream
        .write_all(request.as_bytes())
        .with_context(unreachable)?;
    let mut answer = Vec::new();
    stream
        .take(ANSWER_BYTES_MAX)
        .read_to_end(&mut answer)
        .with_context(|| format!("no complete answer from the broker at {address}"))?;
    parse_answer(address, &answer)
}

/// The report in an HTTP answer, or why there is none.
fn parse_answer(address: &str, answer: &[u8]) -> anyhow::Result<HandOver> {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("the broker at {address} sent an incomplete answer");
    };
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!(
            "the broker at {address} answered `{status}`: {}; is it a Strand broker of this version?",
            body.trim()
        );
    }
    serde_json::from_str(body)
        .with_context(|| format!("the broker at {address} answered `{}`", body.trim()))
}

/// The line printed for a report.
fn summary(report: &HandOver) -> String {
    let handed = format!("handed over {}", leaderships(report.handed_over));
    if report.remaining == 0 {
        return format!("{handed}; this broker leads nothing");
    }
    let mut names = report.still_leading.join(", ");
    if report.still_leading.len() < report.remaining {
        names.push_str(", …");
    }
    if report.deadline_passed {
        format!(
            "{handed}; deadline passed: {} not handed over ({names})",
            leaderships(report.remaining)
        )
    } else {
        format!(
            "{handed}; {} not handed over: no other broker holds a replica to take them ({names})",
            leaderships(report.remaining)
        )
    }
}

/// `1 leadership`, `2 leaderships`.
fn leaderships(n: usize) -> String {
    if n == 1 {
        "1 leadership".to_owned()
    } else {
        format!("{n} leaderships")
    }
}

/// A duration as `90s`, `1500ms` or `2m`; a bare number is seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("`{text}` is not a duration such as 90s, 1500ms or 2m");
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number.parse().map_err(|_| invalid())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => n
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(invalid),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(handed_over: usize, still_leading: &[&str], deadline_passed: bool) -> HandOver {
        HandOver {
            handed_over,
            remaining: still_leading.len(),
            without_other_voter: if deadline_passed {
                0
            } else {
                still_leading.len()
            },
            deadline_passed,
            still_leading: still_leading.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn durations_take_a_unit_or_mean_seconds() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn the_summary_says_what_is_left_and_why() {
        assert_eq!(
            summary(&report(12, &[], false)),
            "handed over 12 leaderships; this broker leads nothing"
        );
        assert_eq!(
            summary(&report(1, &["orders-0", "controller"], true)),
            "handed over 1 leadership; deadline passed: 2 leaderships not handed over (orders-0, controller)"
        );
        assert_eq!(
            summary(&report(0, &["orders-0"], false)),
            "handed over 0 leaderships; 1 leadership not handed over: no other broker holds a replica to take them (orders-0)"
        );
        let mut many = report(0, &["orders-0"], true);
        many.remaining = 30;
        assert!(
            summary(&many).ends_with("(orders-0, …)"),
            "{}",
            summary(&many)
        );
    }

    #[test]
    fn an_answer_other_than_a_report_is_an_error() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"handed_over\":3,\"remaining\":0,\"without_other_voter\":0,\"deadline_passed\":false,\"still_leading\":[]}";
        assert_eq!(parse_answer("b:1", ok).unwrap().handed_over, 3);
        let missing = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        let err = parse_answer("b:1", missing).unwrap_err().to_string();
        assert!(
            err.starts_with("the broker at b:1 answered `HTTP/1.1 404 Not Found`"),
            "{err}"
        );
    }
}
