//! The one integration-test crate (one binary keeps link times low on small machines).

mod architecture;
mod cli;
mod core_properties;
mod core_rules;
mod live;
mod nats;
mod services_flow;
mod services_queries;
mod store_crash;
mod support;
