//! `json`: structured input and output, with nested records and optional
//! fields: an order in, a priced invoice out.
//!
//! ```json
//! {"jsonrpc": "2.0", "id": 1, "method": "json.invoice", "params": {"order": {
//!   "customer": {"name": "Ada", "email": "ada@example.com"},
//!   "items": [{"sku": "A-1", "quantity": 2, "unit_price": 9.5}],
//!   "coupon": "TENOFF"}}}
//! ```

use serde::{Deserialize, Serialize};
use wasmrpc_guest::schemars::JsonSchema;
use wasmrpc_guest::{procedure, Error};

/// A customer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(crate = "wasmrpc_guest::schemars")]
struct Customer {
    name: String,
    /// Where to send the invoice, if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
}

/// One line of an order.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "wasmrpc_guest::schemars")]
struct Item {
    sku: String,
    quantity: u32,
    unit_price: f64,
}

/// An order.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "wasmrpc_guest::schemars")]
struct Order {
    customer: Customer,
    /// At least one item.
    #[schemars(length(min = 1))]
    items: Vec<Item>,
    #[serde(default)]
    coupon: Option<Coupon>,
}

/// The coupons there are.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[schemars(crate = "wasmrpc_guest::schemars")]
enum Coupon {
    /// Takes 10% off.
    #[serde(rename = "TENOFF")]
    TenOff,
}

/// One priced line of an invoice.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(crate = "wasmrpc_guest::schemars")]
struct Line {
    sku: String,
    quantity: u32,
    total: f64,
}

/// The invoice for an order.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(crate = "wasmrpc_guest::schemars")]
struct Invoice {
    customer: Customer,
    lines: Vec<Line>,
    subtotal: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    discount: Option<f64>,
    total: f64,
}

/// Prices an order: one line per item, the coupon applied.
///
/// Fails with code 2 for an order without items.
#[procedure]
fn invoice(order: Order) -> Result<Invoice, Error> {
    if order.items.is_empty() {
        return Err(Error::new(2, "an order needs at least one item"));
    }
    let lines: Vec<Line> = order
        .items
        .iter()
        .map(|item| Line {
            sku: item.sku.clone(),
            quantity: item.quantity,
            total: cents(f64::from(item.quantity) * item.unit_price),
        })
        .collect();
    let subtotal = cents(lines.iter().map(|l| l.total).sum());
    let discount = order.coupon.map(|Coupon::TenOff| cents(subtotal * 0.1));
    Ok(Invoice {
        customer: order.customer,
        lines,
        subtotal,
        discount,
        total: cents(subtotal - discount.unwrap_or(0.0)),
    })
}

/// Counts the values of a JSON document by type, to any depth.
#[procedure]
fn census(document: wasmrpc_guest::serde_json::Value) -> Census {
    let mut census = Census::default();
    let mut stack = vec![&document];
    while let Some(value) = stack.pop() {
        use wasmrpc_guest::serde_json::Value::*;
        match value {
            Null => census.nulls += 1,
            Bool(_) => census.booleans += 1,
            Number(_) => census.numbers += 1,
            String(_) => census.strings += 1,
            Array(items) => {
                census.arrays += 1;
                stack.extend(items);
            }
            Object(map) => {
                census.objects += 1;
                stack.extend(map.values());
            }
        }
    }
    census
}

/// How many values of each JSON type a document holds.
#[derive(Debug, Default, Serialize, JsonSchema)]
#[schemars(crate = "wasmrpc_guest::schemars")]
struct Census {
    nulls: u64,
    booleans: u64,
    numbers: u64,
    strings: u64,
    arrays: u64,
    objects: u64,
}

fn cents(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

wasmrpc_guest::export!(invoice, census);
