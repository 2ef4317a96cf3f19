//! Erlang terms: re-exports of `eetf` (as re-exported by `erl_dist`) and small helpers.
