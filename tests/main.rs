//! The one integration-test crate (one binary keeps link times low on small machines).

mod architecture;
mod cli;
mod core_properties;
mod core_rules;
mod dashboard;
mod gateway;
mod ledger;
mod live;
mod nats;
mod services_append_failure;
mod services_commands;
mod services_flow;
mod services_queries;
mod services_resilience;
mod simulate;
mod store_crash;
mod subjects_doc;
mod support;
mod webhooks;
