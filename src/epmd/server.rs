//! In-process EPMD server (stub, to be written).
