//! The Argo CD health scripts the chart's README ships, run (as Argo CD runs them, in Lua)
//! against the conditions the operator writes: Ready for the current generation is Healthy,
//! Stalled is Degraded, anything else Progressing.

use std::path::Path;

use k8s_openapi::jiff::Timestamp;
use mlua::{Lua, LuaSerdeExt, Table};
use serde_json::{Value, json};
use strand_operator::conditions::{Standing, paused};

/// The Lua of `resource.customizations.health.strand.dev_<kind>` in the chart's README.
fn script(kind: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/strand-operator/README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let key = format!("resource.customizations.health.strand.dev_{kind}: |");
    let start = readme.find(&key).expect("the README has the script") + key.len();
    readme[start..]
        .lines()
        .skip(1)
        .take_while(|line| line.starts_with("    ") || line.is_empty())
        .map(|line| line.get(4..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What Argo CD would show for `object`: status and message.
fn health(kind: &str, object: &Value) -> (String, String) {
    let lua = Lua::new();
    lua.globals()
        .set("obj", lua.to_value(object).unwrap())
        .unwrap();
    let result: Table = lua.load(script(kind)).eval().unwrap();
    (
        result.get::<String>("status").unwrap(),
        result.get::<String>("message").unwrap_or_default(),
    )
}

fn object(kind: &str, generation: i64, standing: &Standing, observed: i64) -> Value {
    let conditions = standing.conditions(Some(observed), &[], Timestamp::now());
    json!({
        "apiVersion": "strand.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "default", "generation": generation},
        "status": {"observedGeneration": observed, "conditions": conditions},
    })
}

#[test]
fn argo_cd_reads_the_operators_conditions() {
    let ready = Standing::Ready {
        reason: "ClusterReady",
        message: "3 brokers ready".into(),
    };
    let reconciling = Standing::Reconciling {
        reason: "BrokersNotReady",
        message: "2 of 3 broker pods are ready".into(),
    };
    let stalled = Standing::Stalled {
        reason: "TopicNotOwned",
        message: "topic orders already exists".into(),
    };
    for kind in ["Cluster", "Topic", "User"] {
        assert_eq!(
            health(kind, &object(kind, 2, &ready, 2)),
            ("Healthy".into(), "3 brokers ready".into())
        );
        // Ready, but for an older spec: the new one is not there yet.
        assert_eq!(health(kind, &object(kind, 3, &ready, 2)).0, "Progressing");
        assert_eq!(
            health(kind, &object(kind, 2, &reconciling, 2)),
            ("Progressing".into(), "2 of 3 broker pods are ready".into())
        );
        assert_eq!(
            health(kind, &object(kind, 2, &stalled, 2)),
            ("Degraded".into(), "topic orders already exists".into())
        );
        // Not looked at yet.
        let fresh = json!({"kind": kind, "metadata": {"generation": 1}});
        assert_eq!(health(kind, &fresh).0, "Progressing");
        // Paused: the last reconcile's conditions stand.
        let mut paused_object = object(kind, 2, &ready, 2);
        let previous: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> =
            serde_json::from_value(paused_object["status"]["conditions"].clone()).unwrap();
        paused_object["status"]["conditions"] =
            serde_json::to_value(paused(&previous, Some(2), Timestamp::now())).unwrap();
        assert_eq!(health(kind, &paused_object).0, "Healthy");
    }
}
