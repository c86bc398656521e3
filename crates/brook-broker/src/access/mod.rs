//! Authorization on the request path: what Kafka's `KafkaApis` checks before each API,
//! with its error codes, over `brook_meta`'s StandardAuthorizer decisions.
//!
//! With `authorizer.class.name` unset, [`Access::check`] gives `None` and every request
//! goes to its handler untouched. Otherwise the router asks the per-API gates here
//! (`data`, `groups`, `admin`) before and after the handler: a gate takes out of the
//! request what the principal may not touch, and puts Kafka's error for it back into
//! the response, so handlers stay free of authorization. Decisions go through the
//! connection's [`DecisionCache`](crate::session::DecisionCache), keyed by the version
//! of the ACLs, so a produce or fetch asks the ACLs once per topic and connection.

mod admin;
mod data;
mod groups;
mod txn;

pub use admin::*;
pub use data::*;
pub use groups::*;
pub use txn::*;

use brook_meta::{AclOperation, Acls, Authorizer, MetadataImage, Requester, ResourceType};

use crate::config::{BrokerSettings, STANDARD_AUTHORIZER};
use crate::handlers::RequestContext;

pub use brook_meta::acl::CLUSTER_NAME;
pub use brook_meta::AclOperation as Op;

/// The broker's authorizer, if one is configured.
#[derive(Debug, Default)]
pub struct Access {
    authorizer: Option<Authorizer>,
}

impl Access {
    pub fn new(settings: &BrokerSettings) -> Self {
        let on = settings.authorizer_class_name.trim() == STANDARD_AUTHORIZER;
        Access {
            authorizer: on.then(|| {
                Authorizer::new(
                    &settings.super_users,
                    settings.allow_everyone_if_no_acl_found,
                )
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        self.authorizer.is_some()
    }

    /// The checks for one request, against `image`'s ACLs; `None` without an
    /// authorizer (everything is allowed).
    pub fn check<'a>(
        &'a self,
        image: &'a MetadataImage,
        ctx: &'a RequestContext,
    ) -> Option<Check<'a>> {
        let authorizer = self.authorizer.as_ref()?;
        Some(Check {
            authorizer,
            acls: &image.acls,
            principal: ctx.session.principal.to_string(),
            host: ctx.peer.ip().to_canonical().to_string(),
            ctx,
        })
    }
}

/// One request's authorization: the principal and client host against the ACLs.
pub struct Check<'a> {
    authorizer: &'a Authorizer,
    acls: &'a Acls,
    principal: String,
    host: String,
    ctx: &'a RequestContext,
}

impl Check<'_> {
    fn requester(&self) -> Requester<'_> {
        Requester {
            principal: &self.principal,
            host: &self.host,
        }
    }

    /// Whether the principal may do `op` on the resource; a denial is logged.
    pub fn allowed(&self, op: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        self.decide(op, resource_type, name, true)
    }

    /// As [`Check::allowed`], for answers that only leave out what is denied (a
    /// listing, authorized-operation sets): Kafka does not log those denials.
    pub fn allowed_quietly(
        &self,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        self.decide(op, resource_type, name, false)
    }

    fn decide(&self, op: AclOperation, resource_type: ResourceType, name: &str, log: bool) -> bool {
        // A denial is logged when it is decided: once per connection, resource and
        // version of the ACLs (the cache is the rate limit).
        let decide = || {
            let allowed =
                self.authorizer
                    .authorize(self.acls, self.requester(), op, resource_type, name);
            if !allowed && log {
                tracing::info!(
                    principal = %self.principal,
                    host = %self.host,
                    listener = %self.ctx.session.listener.name,
                    operation = op.name(),
                    resource_type = resource_type.name(),
                    resource = name,
                    "authorization denied"
                );
            }
            allowed
        };
        self.ctx
            .session
            .decisions
            .get_or(self.acls.changed_at(), op, resource_type, name, decide)
    }

    pub fn topic(&self, op: AclOperation, name: &str) -> bool {
        self.allowed(op, ResourceType::Topic, name)
    }

    pub fn group(&self, op: AclOperation, name: &str) -> bool {
        self.allowed(op, ResourceType::Group, name)
    }

    pub fn txn(&self, op: AclOperation, id: &str) -> bool {
        self.allowed(op, ResourceType::TransactionalId, id)
    }

    pub fn cluster(&self, op: AclOperation) -> bool {
        self.allowed(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Of `ops` (a bit set of Kafka's operation codes, as a handler reports every
    /// operation a resource supports), those the principal may do (Kafka's
    /// `authorizedOperations`). `i32::MIN` (not asked for) stays as it is.
    pub fn authorized_ops(&self, ops: i32, resource_type: ResourceType, name: &str) -> i32 {
        if ops == i32::MIN {
            return ops;
        }
        (0..31)
            .filter(|bit| ops & (1 << bit) != 0)
            .filter(|bit| {
                self.allowed_quietly(AclOperation::from_code(*bit as i8), resource_type, name)
            })
            .fold(0, |acc, bit| acc | (1 << bit))
    }

    /// Whether the principal may do `op` on some resource of the type (Kafka's
    /// `authorizeByResourceType`).
    pub fn any(&self, op: AclOperation, resource_type: ResourceType) -> bool {
        self.authorizer
            .authorize_any(self.acls, self.requester(), op, resource_type)
    }
}

#[cfg(test)]
mod tests;
