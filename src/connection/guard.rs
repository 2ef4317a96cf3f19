//! Bounds check of external term format before decoding (stub, to be written).
