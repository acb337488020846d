//! The macros of `wasmrpc-guest`: `#[procedure]` turns a typed function into
//! a method (argument unmarshalling, result marshalling, its OpenRPC
//! description), and `export!` makes the listed methods the component's
//! `wasmrpc:procedure/stub` export. Use them through `wasmrpc_guest`.

#![warn(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Error, Expr, ExprLit, FnArg, GenericArgument, ItemFn, Lit, LitStr, Meta, Pat, Path, PathArguments, ReturnType,
    Token, Type,
};

/// Makes a function a procedure method. Parameters must be plain names of
/// `Deserialize + JsonSchema` types; the return type `Serialize +
/// JsonSchema`, or a `Result<T, E>` with `E: Into<wasmrpc_guest::Error>`.
/// The doc comment becomes the method's summary and description.
///
/// `#[procedure(name = "other")]` exports it under another method name.
///
/// The function stays as written (callable from Rust); the macro adds a
/// hidden function beside it that [`export!`] lists.
///
/// # Compile errors
///
/// Each at the offending code: a generic or `async` function, a `self`
/// parameter, a parameter that is a pattern rather than a name, a borrowed
/// (`&str`) or `impl Trait` parameter, an empty method name or one starting
/// with `rpc.` (JSON-RPC reserves those), and an argument other than
/// `name = "..."`. A parameter type that is not `Deserialize + JsonSchema`
/// is reported by the compiler at the type.
#[proc_macro_attribute]
pub fn procedure(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = syn::parse_macro_input!(attr as ProcedureArgs);
    let function = syn::parse_macro_input!(item as ItemFn);
    expand_procedure(attr, function).unwrap_or_else(Error::into_compile_error).into()
}

/// Exports the listed `#[procedure]` functions (paths allowed) as the
/// component's methods: `wasmrpc_guest::export!(add, subtract);`. Use it once
/// per crate, at its root.
///
/// In a Wasm build this is the component's `wasmrpc:procedure/stub` export
/// (`describe` and `call`); natively it only defines the method table, so a
/// procedure crate's own tests build and run.
///
/// # Compile errors
///
/// An empty list, and a function listed twice (at its second mention). A
/// listed function without `#[procedure]` is reported by the compiler as a
/// missing `__wasmrpc_method_NAME`, at its name.
#[proc_macro]
pub fn export(input: TokenStream) -> TokenStream {
    let paths = syn::parse_macro_input!(input with Punctuated::<Path, Token![,]>::parse_terminated);
    expand_export(paths).unwrap_or_else(Error::into_compile_error).into()
}

struct ProcedureArgs {
    name: Option<LitStr>,
}

impl Parse for ProcedureArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = ProcedureArgs { name: None };
        for meta in Punctuated::<Meta, Token![,]>::parse_terminated(input)? {
            match &meta {
                Meta::NameValue(nv) if nv.path.is_ident("name") => match &nv.value {
                    Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => args.name = Some(s.clone()),
                    other => return Err(Error::new(other.span(), "expected a string: name = \"method\"")),
                },
                _ => return Err(Error::new(meta.span(), "unknown argument; the only one is name = \"method\"")),
            }
        }
        Ok(args)
    }
}

/// The name of the hidden function `#[procedure]` adds beside `f`.
fn method_fn(name: &syn::Ident) -> syn::Ident {
    format_ident!("__wasmrpc_method_{}", name)
}

fn expand_procedure(args: ProcedureArgs, function: ItemFn) -> syn::Result<TokenStream2> {
    let sig = &function.sig;
    if !sig.generics.params.is_empty() {
        return Err(Error::new_spanned(&sig.generics, "a procedure cannot be generic"));
    }
    if let Some(token) = &sig.asyncness {
        return Err(Error::new(token.span(), "a procedure cannot be async"));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(Error::new_spanned(variadic, "a procedure cannot be variadic"));
    }
    let fn_name = &sig.ident;
    // The span of the name: the `name = "..."` literal when given, else the
    // function's name, so a refused name is underlined where it is written.
    let (method_name, name_span) = match &args.name {
        Some(name) => (name.value(), name.span()),
        None => (fn_name.to_string().trim_start_matches("r#").to_owned(), fn_name.span()),
    };
    if method_name.is_empty() {
        return Err(Error::new(name_span, "a method name cannot be empty"));
    }
    if method_name.starts_with("rpc.") {
        return Err(Error::new(
            name_span,
            format!("method name `{method_name}` is reserved: JSON-RPC keeps names starting with `rpc.` for itself"),
        ));
    }

    let mut names = Vec::new();
    let mut types = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => return Err(Error::new_spanned(r, "a procedure is a free function: no `self`")),
            FnArg::Typed(arg) => {
                let name = match &*arg.pat {
                    Pat::Ident(ident) if ident.subpat.is_none() => ident.ident.to_string(),
                    other => {
                        return Err(Error::new_spanned(
                            other,
                            "procedure parameters must be plain names: they are the params' names in JSON-RPC",
                        ))
                    }
                };
                check_param_type(&arg.ty)?;
                names.push(name.trim_start_matches("r#").to_owned());
                types.push((*arg.ty).clone());
            }
        }
    }

    let (result_type, is_result) = match &sig.output {
        ReturnType::Default => (syn::parse_quote!(()), false),
        ReturnType::Type(_, ty) => match ok_type(ty) {
            Some(ok) => (ok, true),
            None => ((**ty).clone(), false),
        },
    };

    let docs = doc_comment(&function.attrs);
    let vis = &function.vis;
    let hidden = method_fn(fn_name);
    let args: Vec<_> = (0..names.len()).map(|i| format_ident!("__arg{}", i)).collect();
    // Each argument is taken at its type's span, so a type that is not
    // `Deserialize` is reported there rather than at `#[procedure]`.
    let takes = args.iter().zip(&types).enumerate().map(|(index, (arg, ty))| {
        quote_spanned! {ty.span()=> let #arg: #ty = params.take::<#ty>(#index)?; }
    });
    let invoke = quote! { #fn_name(#(#args),*) };
    let answer = if is_result {
        quote! {
            match #invoke {
                ::core::result::Result::Ok(value) => ::wasmrpc_guest::__private::ok(value),
                ::core::result::Result::Err(err) => ::core::result::Result::Err(
                    ::core::convert::Into::<::wasmrpc_guest::Error>::into(err),
                ),
            }
        }
    } else {
        quote! { ::wasmrpc_guest::__private::ok(#invoke) }
    };
    let result_span = match &sig.output {
        ReturnType::Default => sig.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let result_object = quote_spanned! {result_span=> ::wasmrpc_guest::__private::result_object::<#result_type>() };
    let param_objects = names.iter().zip(&types).map(|(name, ty)| {
        quote_spanned! {ty.span()=> ::wasmrpc_guest::__private::param_object::<#ty>(#name) }
    });

    Ok(quote! {
        #function

        #[doc(hidden)]
        #[allow(non_snake_case)]
        #vis fn #hidden() -> ::wasmrpc_guest::__private::Method {
            fn call(params: &str) -> ::core::result::Result<::std::string::String, ::wasmrpc_guest::Error> {
                #[allow(unused_mut, unused_variables)]
                let mut params = ::wasmrpc_guest::__private::Params::parse(params, &[#(#names),*])?;
                #(#takes)*
                #answer
            }
            fn describe() -> ::wasmrpc_guest::serde_json::Value {
                ::wasmrpc_guest::__private::method_object(
                    #method_name,
                    #docs,
                    ::std::vec![#(#param_objects),*],
                    #result_object,
                )
            }
            ::wasmrpc_guest::__private::Method { name: #method_name, describe, call }
        }
    })
}

/// Refuses the parameter types no JSON params can become: borrowed ones
/// (`&str`: each argument is deserialized into a value of its own) and
/// `impl Trait` (a hidden generic). Any other type is left to the compiler,
/// which asks for `Deserialize + JsonSchema` at the type.
fn check_param_type(ty: &Type) -> syn::Result<()> {
    match ty {
        Type::Reference(r) => Err(Error::new_spanned(
            r,
            format!("a procedure parameter cannot be a reference: take an owned `{}` instead", owned_hint(&r.elem)),
        )),
        Type::ImplTrait(t) => {
            Err(Error::new_spanned(t, "a procedure parameter cannot be `impl Trait`: a procedure cannot be generic"))
        }
        Type::Paren(inner) => check_param_type(&inner.elem),
        Type::Group(inner) => check_param_type(&inner.elem),
        _ => Ok(()),
    }
}

/// The owned type to suggest in place of `&elem`.
fn owned_hint(elem: &Type) -> String {
    match elem {
        Type::Path(p) if p.path.is_ident("str") => "String".to_owned(),
        Type::Slice(s) => format!("Vec<{}>", s.elem.to_token_stream()),
        other => other.to_token_stream().to_string(),
    }
}

/// `T` of a return type spelled `...Result<T, ...>`.
fn ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    })
}

/// The doc comment's text, one leading space of each line removed.
fn doc_comment(attrs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .flat_map(|text| text.split('\n').map(str::to_owned).collect::<Vec<_>>())
        .map(|line| line.strip_prefix(' ').map(str::to_owned).unwrap_or(line))
        .collect();
    lines.join("\n").trim().to_owned()
}

fn expand_export(paths: Punctuated<Path, Token![,]>) -> syn::Result<TokenStream2> {
    if paths.is_empty() {
        return Err(Error::new(Span::call_site(), "export! needs at least one #[procedure] function"));
    }
    let mut seen = std::collections::HashSet::new();
    let mut methods = Vec::new();
    for path in paths {
        let mut hidden = path.clone();
        let last = hidden.segments.last_mut().ok_or_else(|| Error::new(path.span(), "expected a function"))?;
        if !seen.insert(last.ident.to_string()) {
            return Err(Error::new(
                last.ident.span(),
                format!("`{}` is exported twice: list each procedure once", last.ident),
            ));
        }
        last.ident = method_fn(&last.ident);
        methods.push(hidden);
    }
    let count = methods.len();
    Ok(quote! {
        #[doc(hidden)]
        struct __WasmrpcStub;

        /// The exported methods; public so a native program can run the very
        /// same stubs (the benchmark's native baseline does).
        #[doc(hidden)]
        pub fn __wasmrpc_methods() -> [::wasmrpc_guest::__private::Method; #count] {
            [#(#methods()),*]
        }

        impl ::wasmrpc_guest::bindings::exports::wasmrpc::procedure::stub::Guest for __WasmrpcStub {
            fn describe() -> ::std::string::String {
                ::wasmrpc_guest::__private::describe(&__wasmrpc_methods())
            }

            fn call(
                method: ::std::string::String,
                params: ::std::string::String,
            ) -> ::core::result::Result<
                ::std::string::String,
                ::wasmrpc_guest::bindings::exports::wasmrpc::procedure::stub::RpcError,
            > {
                ::wasmrpc_guest::__private::dispatch(&__wasmrpc_methods(), &method, &params)
                    .map_err(::wasmrpc_guest::__private::rpc_error)
            }
        }

        // The component exports exist only in a Wasm build: natively (tests,
        // the benchmark's baseline) the symbols would mean nothing, and their
        // names cannot be exported from a native shared library.
        #[cfg(target_arch = "wasm32")]
        ::wasmrpc_guest::bindings::export_stub!(__WasmrpcStub with_types_in ::wasmrpc_guest::bindings);
    })
}
