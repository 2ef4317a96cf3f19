//! EPMD: registering this node and looking up peers, plus an in-process EPMD server used
//! when no EPMD daemon can be found or started.

pub mod server;
