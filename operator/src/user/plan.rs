//! What a User needs, decided without I/O: its principal, its ACLs as the admin API takes
//! them and the changes that bring the cluster's ACLs to them, the rules that match no topic,
//! the client settings its Secret holds, and its status.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use strand_proto::admin::Acl;

use crate::conditions::Standing;
use crate::crd::{
    AclPatternType, AclResourceType, Cluster, ListenerAuthentication, ListenerType, User,
    UserAuthenticationType, UserStatus,
};
use crate::desired::ClusterNames;

/// The Kafka principal of `user`: `User:<name>` for SCRAM, `User:CN=<name>` for a
/// certificate (Kafka's default mapping of a certificate's subject).
pub fn principal(user: &User) -> String {
    let name = user.metadata.name.clone().unwrap_or_default();
    match user.spec.authentication.type_ {
        UserAuthenticationType::ScramSha512 => format!("User:{name}"),
        UserAuthenticationType::Tls => format!("User:CN={name}"),
    }
}

/// The listener authentication a User's credentials are for.
pub fn listener_authentication(user: &User) -> ListenerAuthentication {
    match user.spec.authentication.type_ {
        UserAuthenticationType::ScramSha512 => ListenerAuthentication::ScramSha512,
        UserAuthenticationType::Tls => ListenerAuthentication::Tls,
    }
}

/// Every ACL `user`'s rules make: one per rule and operation, for its principal.
pub fn desired_acls(user: &User) -> Vec<Acl> {
    let principal = principal(user);
    let mut acls: Vec<Acl> = user
        .spec
        .acls
        .iter()
        .flat_map(|rule| {
            let principal = principal.clone();
            rule.operations.iter().map(move |operation| Acl {
                resource_type: rule.resource.type_.kafka_name().to_owned(),
                resource_name: rule.resource.name.clone(),
                pattern_type: rule.resource.pattern_type.kafka_name().to_owned(),
                principal: principal.clone(),
                host: rule.host.clone(),
                operation: operation.kafka_name().to_owned(),
                permission: rule.type_.kafka_name().to_owned(),
            })
        })
        .collect();
    acls.sort_by_key(key);
    acls.dedup_by_key(|acl| key(acl));
    acls
}

/// An ACL as a comparable key; the names compare without case, as the admin API reads them.
fn key(acl: &Acl) -> [String; 7] {
    [
        acl.resource_type.to_lowercase(),
        acl.resource_name.clone(),
        acl.pattern_type.to_lowercase(),
        acl.principal.clone(),
        acl.host.clone(),
        acl.operation.to_lowercase(),
        acl.permission.to_lowercase(),
    ]
}

/// The ACLs to create (wanted, missing) and to delete (present, not wanted): the User's
/// principal has exactly the ACLs its rules make.
pub fn acl_changes(wanted: &[Acl], present: &[Acl]) -> (Vec<Acl>, Vec<Acl>) {
    let present_keys: Vec<_> = present.iter().map(key).collect();
    let wanted_keys: Vec<_> = wanted.iter().map(key).collect();
    let create = wanted
        .iter()
        .filter(|acl| !present_keys.contains(&key(acl)))
        .cloned()
        .collect();
    let delete = present
        .iter()
        .filter(|acl| !wanted_keys.contains(&key(acl)))
        .cloned()
        .collect();
    (create, delete)
}

/// The User's topic rules whose name matches none of `topics`, as a person reads them
/// (`topic payments (literal)`); `*` matches every topic, even none.
pub fn matching_nothing(user: &User, topics: &[String]) -> Vec<String> {
    let mut out: Vec<String> = user
        .spec
        .acls
        .iter()
        .filter(|rule| rule.resource.type_ == AclResourceType::Topic && rule.resource.name != "*")
        .filter(|rule| {
            let name = &rule.resource.name;
            !topics.iter().any(|topic| match rule.resource.pattern_type {
                AclPatternType::Literal => topic == name,
                AclPatternType::Prefixed => topic.starts_with(name.as_str()),
            })
        })
        .map(|rule| {
            let pattern = match rule.resource.pattern_type {
                AclPatternType::Literal => "literal",
                AclPatternType::Prefixed => "prefixed",
            };
            format!("topic {} ({pattern})", rule.resource.name)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Where the User's clients bootstrap, per listener its credentials are for: the key
/// `bootstrap.servers.<listener>`, and `bootstrap.servers` for the first (an internal one if
/// there is one). An external listener whose address is not known yet is left out.
pub fn bootstrap_entries(
    user: &User,
    cluster: &Cluster,
    names: &ClusterNames,
) -> BTreeMap<String, String> {
    let authentication = listener_authentication(user);
    let known: BTreeMap<String, String> = cluster
        .status
        .as_ref()
        .map(|s| {
            s.listeners
                .iter()
                .filter_map(|l| Some((l.name.clone(), l.bootstrap_servers.clone()?)))
                .collect()
        })
        .unwrap_or_default();
    let mut listeners: Vec<_> = cluster
        .spec
        .listeners()
        .into_iter()
        .filter(|l| l.authentication == authentication)
        .collect();
    // Internal listeners first: `bootstrap.servers` is for clients in the cluster.
    listeners.sort_by_key(|l| l.type_ != ListenerType::Internal);
    let mut entries = BTreeMap::new();
    for listener in listeners {
        let address = match listener.type_ {
            ListenerType::Internal => Some(names.bootstrap_servers(&listener)),
            ListenerType::Nodeport | ListenerType::Loadbalancer | ListenerType::Ingress => {
                known.get(&listener.name).cloned()
            }
        };
        let Some(address) = address else { continue };
        entries
            .entry("bootstrap.servers".to_owned())
            .or_insert_with(|| address.clone());
        entries.insert(format!("bootstrap.servers.{}", listener.name), address);
        entries
            .entry("security.protocol".to_owned())
            .or_insert_with(|| listener.protocol().to_owned());
    }
    entries
}

/// Whether `cluster` has a listener `user`'s credentials are for; the message when not.
pub fn no_listener(user: &User, cluster: &Cluster) -> Option<String> {
    let authentication = listener_authentication(user);
    if cluster
        .spec
        .listeners()
        .iter()
        .any(|l| l.authentication == authentication)
    {
        return None;
    }
    let wanted = match authentication {
        ListenerAuthentication::ScramSha512 => "scram-sha-512",
        _ => "tls",
    };
    Some(format!(
        "Cluster {} has no listener with authentication: {wanted}, so this user could not \
         connect; add one to the Cluster's spec.listeners",
        cluster.metadata.name.clone().unwrap_or_default()
    ))
}

/// `sasl.jaas.config` for a SCRAM user, as Java clients take it.
pub fn jaas_config(username: &str, password: &str) -> String {
    format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required \
         username=\"{username}\" password=\"{password}\";"
    )
}

/// The status a User should have.
pub fn status(
    user: &User,
    cluster_id: Option<&str>,
    acls_matching_nothing: Vec<String>,
    standing: &Standing,
    now: Timestamp,
) -> UserStatus {
    let old = user.status.clone().unwrap_or_default();
    let generation = user.metadata.generation;
    let made = cluster_id.is_some() || old.principal.is_some();
    UserStatus {
        observed_generation: generation,
        conditions: standing.conditions(generation, &old.conditions, now),
        principal: made.then(|| principal(user)),
        secret_name: made.then(|| user.metadata.name.clone()).flatten(),
        cluster_id: cluster_id.map(str::to_owned).or(old.cluster_id),
        acls_matching_nothing,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user(authentication: &str, acls: serde_json::Value) -> User {
        serde_json::from_value(json!({
            "apiVersion": "strand.dev/v1alpha1", "kind": "User",
            "metadata": {"name": "payments-app", "namespace": "ns"},
            "spec": {
                "clusterRef": {"name": "main"},
                "authentication": {"type": authentication},
                "acls": acls,
            },
        }))
        .unwrap()
    }

    fn rules() -> serde_json::Value {
        json!([
            {"resource": {"type": "topic", "name": "payments"}, "operations": ["Read", "Write"]},
            {"resource": {"type": "group", "name": "payments-", "patternType": "prefixed"},
             "operations": ["Read"]},
            {"resource": {"type": "topic", "name": "audit-", "patternType": "prefixed"},
             "operations": ["Describe"], "type": "deny", "host": "10.0.0.1"},
        ])
    }

    #[test]
    fn rules_become_one_acl_per_operation_for_the_users_principal() {
        let scram = user("scram-sha-512", rules());
        assert_eq!(principal(&scram), "User:payments-app");
        assert_eq!(principal(&user("tls", json!([]))), "User:CN=payments-app");
        let acls = desired_acls(&scram);
        assert_eq!(acls.len(), 4);
        let deny = acls.iter().find(|a| a.permission == "Deny").unwrap();
        assert_eq!(
            (
                deny.resource_type.as_str(),
                deny.resource_name.as_str(),
                deny.pattern_type.as_str(),
                deny.host.as_str(),
                deny.operation.as_str()
            ),
            ("Topic", "audit-", "Prefixed", "10.0.0.1", "Describe")
        );
        assert!(acls.iter().all(|a| a.principal == "User:payments-app"));
        let group = acls.iter().find(|a| a.resource_type == "Group").unwrap();
        assert_eq!(
            (group.host.as_str(), group.permission.as_str()),
            ("*", "Allow")
        );
    }

    #[test]
    fn changes_bring_the_principals_acls_to_exactly_the_rules() {
        let wanted = desired_acls(&user("scram-sha-512", rules()));
        let (create, delete) = acl_changes(&wanted, &[]);
        assert_eq!((create.len(), delete.len()), (4, 0));
        // The admin API may spell names in another case; that is the same ACL.
        let mut present: Vec<Acl> = wanted[1..].to_vec();
        present[0].operation = present[0].operation.to_uppercase();
        let stray = Acl {
            operation: "Alter".to_owned(),
            ..wanted[0].clone()
        };
        present.push(stray.clone());
        let (create, delete) = acl_changes(&wanted, &present);
        assert_eq!(create, vec![wanted[0].clone()]);
        assert_eq!(delete, vec![stray]);
        assert_eq!(acl_changes(&wanted, &wanted), (vec![], vec![]));
    }

    #[test]
    fn topic_rules_that_match_nothing_are_named() {
        let user = user("scram-sha-512", rules());
        let none = matching_nothing(&user, &[]);
        assert_eq!(
            none,
            ["topic audit- (prefixed)", "topic payments (literal)"]
        );
        let topics = ["payments".to_owned(), "audit-eu".to_owned()];
        assert!(matching_nothing(&user, &topics).is_empty());
    }
}
