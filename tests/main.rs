//! The one integration-test crate (one binary keeps link times low on small machines).

mod core_properties;
mod core_rules;
mod support;
