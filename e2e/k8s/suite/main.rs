//! Strand on a real Kubernetes API server: the operator installed as a user installs it (CRDs,
//! RBAC, Deployment running in-cluster under its own ServiceAccount), then the journeys a
//! platform team takes, each checked the way a person would check it (conditions, `strand
//! cluster describe`, every acknowledged record read back).
//!
//! Runs against the cluster in `KUBECONFIG`; `e2e/k8s/run.sh` starts a local control plane
//! (`../shared/k8s`), builds the binaries, writes the image map and runs this. Settings:
//! `STRAND_BIN` (the `strand` CLI), `STRAND_E2E_PKUBELET` (pkubelet's command for crashing a
//! pod; without it the crash journey kills the broker process through its own port).

mod brokers;
mod certmanager;
mod journeys;
mod kubectl;
mod nodeports;
mod security;
mod suite;
mod traffic;

use std::process::ExitCode;
use std::time::Instant;

use suite::Suite;

fn main() -> ExitCode {
    let started = Instant::now();
    let suite = Suite::new();
    let mut failed = None;
    // `STRAND_E2E_JOURNEYS=secure,scale` runs only the journeys whose names hold one of the
    // words (and the install, which every journey needs).
    let only: Vec<String> = std::env::var("STRAND_E2E_JOURNEYS")
        .unwrap_or_default()
        .split(',')
        .map(|w| w.trim().to_owned())
        .filter(|w| !w.is_empty())
        .collect();
    let mut ran = 0;
    for (name, journey) in journeys::ALL {
        if !only.is_empty()
            && !name.starts_with("install")
            && !only.iter().any(|w| name.contains(w.as_str()))
        {
            continue;
        }
        ran += 1;
        let began = Instant::now();
        println!("journey {name} ...");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| journey(&suite)));
        let seconds = began.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => println!("journey {name}: ok ({seconds:.1} s)"),
            Err(_) => {
                println!("journey {name}: FAILED ({seconds:.1} s)");
                suite.diagnostics();
                failed = Some(*name);
                break;
            }
        }
    }
    suite.clean_up();
    let total = started.elapsed().as_secs_f64();
    match failed {
        None => {
            println!("k8s suite: {ran} journeys passed in {total:.1} s");
            ExitCode::SUCCESS
        }
        Some(name) => {
            println!("k8s suite: failed at journey {name} after {total:.1} s");
            ExitCode::FAILURE
        }
    }
}
