//! The brokers' volumes after the StatefulSet exists: its claim template cannot change, so a
//! larger `spec.storage.size` is carried out on each volume claim instead (when the
//! StorageClass allows expansion), and what cannot be done (a smaller size, another class)
//! is reported without holding back scaling or config rolls.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::json;
use tracing::info;

use super::plan::quantity_bytes;
use crate::admin::AdminApi;
use crate::conditions::Standing;
use crate::context::Context;
use crate::crd::Cluster;
use crate::desired::Desired;

fn requested(claim: &PersistentVolumeClaim) -> Option<&Quantity> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
}

fn capacity(claim: &PersistentVolumeClaim) -> Option<&Quantity> {
    claim.status.as_ref()?.capacity.as_ref()?.get("storage")
}

fn bytes(quantity: Option<&Quantity>) -> Option<f64> {
    quantity.and_then(|q| quantity_bytes(&q.0))
}

/// Keeps the StatefulSet's claim template as it was created (the API server refuses any
/// change to it), expands claims smaller than the spec, and says where storage stands when
/// it needs a person or is still under way; `None` when every volume matches the spec.
pub(super) async fn converge<A: AdminApi>(
    ctx: &Context<A>,
    cluster: &Cluster,
    existing: &StatefulSet,
    claims: &[PersistentVolumeClaim],
    objects: &mut Desired,
) -> Option<Standing> {
    let created = existing
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .and_then(|t| t.first())
        .and_then(|t| t.spec.clone());
    let desired = objects
        .stateful_set
        .spec
        .as_mut()
        .and_then(|s| s.volume_claim_templates.as_mut())
        .and_then(|t| t.first_mut())
        .and_then(|t| t.spec.as_mut());
    let mut class_changed = None;
    if let (Some(created), Some(desired)) = (created, desired) {
        if created.storage_class_name != desired.storage_class_name {
            class_changed = Some((
                created.storage_class_name.clone(),
                desired.storage_class_name.clone(),
            ));
        }
        desired.storage_class_name = created.storage_class_name;
        desired.resources = created.resources;
    }
    let wanted = &cluster.spec.storage.size;
    let wanted_bytes = quantity_bytes(&wanted.0);
    let namespace = cluster.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut problem = None;
    let mut expanding = Vec::new();
    // Only the volumes of the brokers the Cluster runs: those a scale-down left behind wait,
    // as they are, for a scale-up.
    let serving = claims.iter().filter(|claim| {
        claim
            .name_any()
            .rsplit('-')
            .next()
            .and_then(|ordinal| ordinal.parse::<i32>().ok())
            .is_some_and(|ordinal| ordinal < cluster.spec.replicas)
    });
    let mut serving_count = 0;
    for claim in serving {
        serving_count += 1;
        let name = claim.name_any();
        let have = bytes(requested(claim));
        if wanted_bytes < have {
            problem = Some(Standing::Stalled {
                reason: "VolumeShrinkRefused",
                message: format!(
                    "spec.storage.size is {} but volume {name} already has {}; volumes cannot \\
                     shrink: set spec.storage.size to at least that (brokers keep running)",
                    wanted.0,
                    requested(claim).map_or("?", |q| q.0.as_str())
                ),
            });
            continue;
        }
        if wanted_bytes > have {
            let patch = json!({"spec": {"resources": {"requests": {"storage": wanted.0}}}});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    info!(claim = %name, size = %wanted.0, "expanding volume");
                    ctx.publish(
                        cluster,
                        EventType::Normal,
                        "ExpandingVolume",
                        "Resize",
                        format!("volume {name}: requested {}", wanted.0),
                    )
                    .await;
                }
                Err(error) => {
                    problem = Some(Standing::Stalled {
                        reason: "VolumeExpansionRefused",
                        message: format!(
                            "volume {name} cannot grow to {}: {error}; use a StorageClass with \\
                             allowVolumeExpansion, or set spec.storage.size back (brokers keep \\
                             running)",
                            wanted.0
                        ),
                    });
                    continue;
                }
            }
        }
        let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        if bound && bytes(capacity(claim)) < wanted_bytes {
            expanding.push(name);
        }
    }
    if let Some((from, to)) = class_changed {
        return Some(Standing::Stalled {
            reason: "StorageClassImmutable",
            message: format!(
                "spec.storage.storageClassName is {} but the volumes were made with {}; a \\
                 volume's class cannot change: set it back (brokers keep running)",
                to.as_deref().unwrap_or("(default)"),
                from.as_deref().unwrap_or("(default)")
            ),
        });
    }
    problem.or_else(|| {
        (!expanding.is_empty()).then(|| Standing::Reconciling {
            reason: "VolumesExpanding",
            message: format!(
                "{} of {} volumes are growing to {}: {}",
                expanding.len(),
                serving_count,
                wanted.0,
                expanding.join(", ")
            ),
        })
    })
}
