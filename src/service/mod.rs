//! The ttrpc service: a thin async shim over [`crate::manager`].

pub mod proto;
