//! Any Rust error as the exception a BEAM caller sees.

use super::gen_server::{CallError, StartError};
use super::rpc::{rpc_exception, RpcError};
use super::task_supervisor::TaskError;
use crate::process::Exception;

/// `?` on any error in a process body or a registered function: this crate's errors
/// that are exits on the BEAM stay exits (a failed `GenServer.call` or `Task.await`
/// exits the caller, a server that did not start gives its reason), an [`RpcError`] is
/// what `:erpc.call` raises, and every other error is raised as an Elixir
/// `RuntimeError` with the error's text (`Task.await` and `:erpc.call` on the calling
/// node raise it as `** (RuntimeError) ...`).
impl<E: std::error::Error + Send + Sync + 'static> From<E> for Exception {
    /// The `RuntimeError` has the frame of the `?` (or the call) that converted it.
    #[track_caller]
    fn from(e: E) -> Self {
        let e: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
        let e = match e.downcast::<CallError>() {
            Ok(call) => return Exception::Exit(call.reason()),
            Err(e) => e,
        };
        let e = match e.downcast::<TaskError>() {
            Ok(task) => return Exception::Exit(task.into_reason()),
            Err(e) => e,
        };
        let e = match e.downcast::<StartError>() {
            Ok(start) => return start.0,
            Err(e) => e,
        };
        match e.downcast::<RpcError>() {
            Ok(rpc) => rpc_exception(*rpc),
            Err(e) => Exception::runtime_error(e.to_string()),
        }
    }
}

#[cfg(feature = "anyhow")]
impl Exception {
    /// An `anyhow::Error` as the exception it raises (feature `anyhow`; `?` cannot take
    /// it, as `anyhow::Error` is no `std::error::Error`):
    /// `business().map_err(Exception::anyhow)?`. The error inside it converts as `?`
    /// converts it, an [`Exception`] made an `anyhow::Error` comes back as it was, and any
    /// other is a `RuntimeError` with the error's text and its causes (`"reading the
    /// config: disk full"`), with the frame of the call when it is made in your code
    /// (`map_err(|e| Exception::anyhow(e))`; none through `map_err(Exception::anyhow)`).
    #[track_caller]
    pub fn anyhow(e: anyhow::Error) -> Self {
        let e = match e.downcast::<Exception>() {
            Ok(exception) => return exception,
            Err(e) => e,
        };
        let e = match e.downcast::<CallError>() {
            Ok(call) => return Exception::from(call),
            Err(e) => e,
        };
        let e = match e.downcast::<TaskError>() {
            Ok(task) => return Exception::from(task),
            Err(e) => e,
        };
        let e = match e.downcast::<StartError>() {
            Ok(start) => return Exception::from(start),
            Err(e) => e,
        };
        match e.downcast::<RpcError>() {
            Ok(rpc) => Exception::from(rpc),
            Err(e) => Exception::runtime_error(format!("{e:#}")),
        }
    }
}

/// An [`Exception`] into an `anyhow::Error` (feature `anyhow`), for `?` in code that
/// returns `anyhow::Result`: its text is the exception as iex prints it, and it
/// converts back to the same exception.
#[cfg(feature = "anyhow")]
impl From<Exception> for anyhow::Error {
    fn from(e: Exception) -> Self {
        anyhow::Error::msg(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::gen_server::CallErrorKind;
    use crate::process::Dest;
    use crate::term::{atom, parse, tuple};

    const FIVE_S: std::time::Duration = std::time::Duration::from_secs(5);

    #[test]
    fn the_crates_exits_stay_exits_and_other_errors_are_raised() {
        let nope = Dest::from("nope");
        let call = CallError::new(CallErrorKind::NoProc, &nope, atom("hi"), Some(FIVE_S));
        let exit = parse("{:noproc, {GenServer, :call, [:nope, :hi, 5000]}}").unwrap();
        assert_eq!(Exception::from(call), Exception::Exit(exit));
        let timeout = tuple(vec![atom("timeout"), atom("await")]);
        assert_eq!(
            Exception::from(TaskError::exit(timeout.clone())),
            Exception::Exit(timeout)
        );
        let stopped = Exception::Exit(atom("shutdown"));
        assert_eq!(Exception::from(StartError(stopped.clone())), stopped);
        let line = line!() + 1;
        let raised = Exception::from(std::io::Error::other("disk full"));
        let Exception::Error { reason, stacktrace } = raised else {
            panic!("not an error: {raised:?}");
        };
        let Exception::Error {
            reason: expected, ..
        } = Exception::runtime_error("disk full")
        else {
            unreachable!()
        };
        assert_eq!(reason, expected);
        assert_eq!(
            crate::term::list(stacktrace).to_string(),
            format!(
                "[{{:rust, :anonymous, 0, [file: ~c\"{}\", line: {line}]}}]",
                file!()
            )
        );
    }

    #[cfg(feature = "anyhow")]
    #[test]
    fn anyhow_errors_convert_both_ways() {
        use anyhow::Context;
        let nope = Dest::from("nope");
        let call = CallError::new(CallErrorKind::NoProc, &nope, atom("hi"), Some(FIVE_S));
        let reason = call.reason();
        assert_eq!(
            Exception::anyhow(anyhow::Error::from(call)),
            Exception::Exit(reason)
        );
        let failed: anyhow::Result<()> =
            Err(std::io::Error::other("disk full")).context("reading the config");
        let raised = Exception::anyhow(failed.unwrap_err());
        assert!(
            raised.to_string().contains("reading the config: disk full"),
            "{raised}"
        );
        let exit = Exception::Exit(atom("bye"));
        let wrapped = anyhow::Error::from(exit.clone());
        assert_eq!(wrapped.to_string(), exit.to_string());
        assert_eq!(Exception::anyhow(wrapped), exit);
    }
}
