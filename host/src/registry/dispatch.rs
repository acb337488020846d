//! The call path through the registry: find the version serving a method,
//! run it in the sandbox, check that its result is JSON, count it, log
//! one line, and end its span (when traced: [`crate::trace`]). A request's
//! call (from `rpc`) and a procedure's nested call (the sandbox's
//! [`Dispatcher`]) take the same path; only the nested one
//! is refused `rpc.` methods and has its params checked, since they come
//! from a guest rather than through the JSON-RPC envelope.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::Value;

use super::{Registry, Version};
use crate::logtext::loggable;
use crate::sandbox::{BoxFuture, CallContext, CallError, Compiled, Dispatcher, ErrorObject};

impl Registry {
    /// Calls `method` (`module.method`, or `name` for `name.name`) with
    /// `params` (JSON text) in a fresh instance of the version serving now,
    /// as the call `ctx`, with one log line (none for a method that does
    /// not exist) and, when traced, one span (for every call). The guest's
    /// own calls come back here through [`Dispatcher`], as nested calls of
    /// `ctx`'s tree.
    pub async fn call(self: &Arc<Self>, method: &str, params: &str, ctx: CallContext) -> Result<String, CallError> {
        let (module, function) = method.split_once('.').unwrap_or((method, method));
        let request_id = ctx.request_id;
        let depth = ctx.depth();
        let caller = ctx.caller().cloned();
        let span = ctx.trace.clone();
        let started = Instant::now();
        let outcome = self.call_version(module, function, params, ctx, started).await;
        let trace_id = span.as_ref().map(crate::trace::Span::trace_id);
        if !matches!(outcome, Err(CallError::MethodNotFound)) {
            let call = CallLog { request_id, depth, caller: caller.as_deref(), method, trace_id };
            log_call(&call, started.elapsed(), outcome.as_ref().err());
        }
        if let Some(span) = span {
            span.end(method, depth, request_id, outcome.as_ref().err());
        }
        outcome
    }

    /// Calls `function` of the version of `module` serving now, and checks
    /// that the result is JSON. Records the call in the procedure's
    /// counters, as taking the time since `started` (the clock read of the
    /// call's log line: one read serves both).
    async fn call_version(
        self: &Arc<Self>,
        module: &str,
        function: &str,
        params: &str,
        ctx: CallContext,
        started: Instant,
    ) -> Result<String, CallError> {
        let version =
            self.get(module).filter(|v| v.described.methods.contains(function)).ok_or(CallError::MethodNotFound)?;
        if let Some(caller) = ctx.caller() {
            self.nested.record(caller, module);
        }
        let since_open = u64::try_from(started.saturating_duration_since(self.opened).as_millis()).unwrap_or(u64::MAX);
        if version.last_call.load(Ordering::Relaxed) != since_open {
            version.last_call.store(since_open, Ordering::Relaxed);
        }
        let code = match version.code.load_full() {
            Some(code) => code,
            None => self.load_for_call(&version, ctx.request_id).await?,
        };
        let dispatcher = self.clone();
        let outcome = self
            .sandbox
            .call(&code, &version.serving, function, params, ctx, &version.stats, dispatcher)
            .await
            .and_then(|json| match serde_json::from_str::<serde::de::IgnoredAny>(&json) {
                Ok(_) => Ok(json),
                Err(e) => Err(CallError::InvalidOutput(e.to_string())),
            });
        version.stats.record(started.elapsed(), outcome.as_ref().err().map(CallError::code));
        outcome
    }

    /// Loads `version`'s code for a call (`code.rs`): it was not loaded
    /// yet (by this version: another of the same code may have), or was
    /// unloaded. A failure is logged with the request id; the caller gets
    /// an internal error without the details.
    async fn load_for_call(
        self: &Arc<Self>,
        version: &Arc<Version>,
        request_id: u64,
    ) -> Result<Arc<Compiled>, CallError> {
        if let Some(code) = self.code.get(&version.metadata.sha256) {
            return Ok(self.keep_code(version, code));
        }
        let (this, sha256) = (self.clone(), version.metadata.sha256.clone());
        let loaded = super::blocking(move || this.load_code(&sha256)).await;
        match loaded {
            Ok(code) => {
                self.code.record_load();
                Ok(self.keep_code(version, code))
            }
            Err(e) => {
                let procedure = version.metadata.name.as_str();
                tracing::error!(procedure, request_id, "cannot load the procedure's code: {e:#}");
                Err(CallError::Unloadable)
            }
        }
    }
}

/// A procedure's call of another (`client.call`): dispatched like a
/// request's call, except that `rpc.` methods are the server's to answer to
/// clients, not to procedures, and that `params` come from a guest, so they
/// are checked as the envelope's are.
impl Dispatcher for Registry {
    fn kv(&self) -> &crate::kv::Kv {
        self.kv()
    }

    fn vars(&self) -> &crate::vars::Vars {
        self.vars()
    }

    fn slots(&self) -> &crate::sandbox::Slots {
        self.sandbox.slots()
    }

    fn dispatch<'a>(
        self: Arc<Self>,
        method: &'a str,
        params: &'a str,
        ctx: CallContext,
    ) -> BoxFuture<'a, Result<String, ErrorObject>> {
        Box::pin(async move {
            if method.starts_with("rpc.") {
                return Err(CallError::MethodNotFound.to_object(method));
            }
            let params_ok = serde_json::from_str::<&RawValue>(params)
                .is_ok_and(|p| p.get().starts_with(['[', '{']) || p.get() == "null");
            if !params_ok {
                let why = "params must be JSON text: an array, an object or null".to_owned();
                return Err(CallError::InvalidRequest(why).to_object(method));
            }
            self.call(method, params, ctx).await.map_err(|e| e.to_object(method))
        })
    }
}

/// Who made a call, for its log line.
struct CallLog<'a> {
    request_id: u64,
    /// 0 for a request's call, else how deep in its call tree.
    depth: u32,
    /// The calling procedure of a nested call.
    caller: Option<&'a str>,
    method: &'a str,
    /// The call's trace, when it is traced: logs and traces join on it.
    trace_id: Option<opentelemetry::trace::TraceId>,
}

fn log_call(call: &CallLog<'_>, elapsed: Duration, error: Option<&CallError>) {
    let CallLog { request_id, depth, caller, method, trace_id } = *call;
    let trace_id = trace_id.map(tracing::field::display);
    let duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let outcome = if error.is_some() { "error" } else { "ok" };
    let code = error.map(CallError::code);
    let message = loggable(error.map_or("ok", CallError::message));
    match error {
        // The server or the sandbox stopped the call: worth a warning. A
        // procedure's own error is an answer like any other.
        Some(e) if e.is_host_error() => {
            let data = e.data(method).unwrap_or(Value::Null).to_string();
            let data = loggable(&data);
            tracing::warn!(target: "wasmrpc::call", request_id, depth, caller, method, duration_us, outcome, code, trace_id, %data, "{message}")
        }
        _ => {
            tracing::debug!(target: "wasmrpc::call", request_id, depth, caller, method, duration_us, outcome, code, trace_id, "{message}")
        }
    }
}
