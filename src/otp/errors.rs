//! Any Rust error as the exception a BEAM caller sees.

use super::gen_server::CallError;
use super::rpc::{rpc_exception, RpcError};
use crate::process::Exception;

/// `?` on any error in a process body or a registered function: this crate's errors
/// that are exits on the BEAM stay exits (a failed `GenServer.call` exits the caller),
/// an [`RpcError`] is what `:erpc.call` raises, and every other error is raised as an
/// Elixir `RuntimeError` with the error's text (`Task.await` and `:erpc.call` on the
/// calling node raise it as `** (RuntimeError) ...`).
impl<E: std::error::Error + Send + Sync + 'static> From<E> for Exception {
    fn from(e: E) -> Self {
        let e: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
        let e = match e.downcast::<CallError>() {
            Ok(call) => return Exception::Exit(call.reason()),
            Err(e) => e,
        };
        match e.downcast::<RpcError>() {
            Ok(rpc) => rpc_exception(*rpc),
            Err(e) => Exception::runtime_error(e.to_string()),
        }
    }
}
