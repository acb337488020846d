//! `wasmrpc:procedure/client` (0.1.1 on): a procedure calling procedures.
//! The call goes to the call tree's [`Dispatcher`] (the registry) as a
//! nested call: the same request id, one level deeper, the tree's deadline
//! and nested-call budget, this procedure as the caller, and (when traced) a
//! span whose parent is this call's.

use std::time::Instant;

use wasmtime::component::HasSelf;

use super::Capability;
use crate::sandbox::bindings::wasmrpc::procedure::client::{self, Host};
use crate::sandbox::call::{CallContext, Dispatcher, Nested, INTERNAL_ERROR};
use crate::sandbox::state::CallState;

pub(in crate::sandbox) const CAPABILITY: Capability = Capability {
    described: "`wasmrpc:procedure/client`",
    serves: |name| name.starts_with("wasmrpc:procedure/client@0.1."),
    link: |linker| client::add_to_linker::<_, HasSelf<_>>(linker, |s| s),
};

impl Host for CallState {
    async fn call(&mut self, method: String, params: String) -> Result<String, client::CallError> {
        let Some(dispatcher) = self.tree.dispatcher.clone() else {
            return Err(client::CallError {
                code: INTERNAL_ERROR,
                message: "procedures cannot be called while `describe` runs (at deploy)".into(),
                data: None,
            });
        };
        let ctx = CallContext {
            request_id: self.request_id,
            nested: Some(Nested {
                depth: self.tree.depth + 1,
                deadline: self.tree.deadline,
                budget: self.tree.budget.get_or_insert_with(Default::default).clone(),
                caller: self.procedure.clone(),
            }),
            trace: self.tree.trace.as_ref().map(crate::trace::Span::child),
        };
        let outcome = Dispatcher::dispatch(dispatcher, &method, &params, ctx).await;
        if outcome.is_err() && Instant::now() >= self.tree.deadline {
            self.tree.deadline_hit = true;
        }
        outcome.map_err(|e| client::CallError { code: e.code, message: e.message, data: e.data })
    }
}
