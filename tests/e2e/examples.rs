//! Every example procedure through the real server, and `rpc.discover`
//! checked against the OpenRPC meta-schema.

use serde_json::{json, Value};

use crate::support::Server;

const EXAMPLES: [&str; 3] = ["math", "text", "json"];

async fn examples_server() -> Server {
    let server = Server::start(&[]);
    for name in EXAMPLES {
        server.deploy_ok(name, name).await;
    }
    server
}

#[tokio::test]
async fn math() {
    let server = examples_server().await;
    assert_eq!(server.result("math.add", json!([2, 3])).await, json!(5));
    assert_eq!(server.result("math.add", json!({"b": 3, "a": 2})).await, json!(5));
    assert_eq!(server.result("math.subtract", json!([2, 3])).await, json!(-1));
    assert_eq!(server.result("math.multiply", json!([-4, 3])).await, json!(-12));
    assert_eq!(server.result("math.divide", json!([1, 4])).await, json!(0.25));
    assert_eq!(server.result("math.round", json!([1.23456])).await, json!(1.0));
    assert_eq!(server.result("math.round", json!({"x": 1.23456, "digits": 2})).await, json!(1.23));
    assert_eq!(server.result("math.stats", json!([[1, 2, 6]])).await, json!({"count": 3, "sum": 9.0, "mean": 3.0}));
    assert_eq!(server.result("math.stats", json!([[]])).await, json!({"count": 0, "sum": 0.0, "mean": null}));

    let zero = server.error("math.divide", json!([1, 0])).await;
    assert_eq!(zero, json!({"code": 1, "message": "division by zero", "data": {"a": 1.0}}));
    let overflow = server.error("math.add", json!([i64::MAX, 1])).await;
    assert_eq!(overflow["message"], "integer overflow in add");
}

#[tokio::test]
async fn wrong_params_name_the_parameter() {
    let server = examples_server().await;
    let wrong_type = server.error("math.add", json!([1, "two"])).await;
    assert_eq!(wrong_type["code"], -32602, "{wrong_type}");
    assert_eq!(wrong_type["message"], "invalid parameter `b`: invalid type: string \"two\", expected i64");
    assert_eq!(wrong_type["data"], json!({"parameter": "b", "expected": "i64"}));

    let missing = server.error("math.add", json!({"a": 1})).await;
    assert_eq!(missing["message"], "missing parameter `b` (expected i64)");
    let too_many = server.error("math.add", json!([1, 2, 3])).await;
    assert_eq!(too_many["code"], -32602);
    assert!(too_many["message"].as_str().unwrap().contains("too many parameters"), "{too_many}");
    let unknown = server.error("math.add", json!({"a": 1, "b": 2, "c": 3})).await;
    assert_eq!(unknown["message"], "unknown parameter `c`: expected `a`, `b`");
    let no_params = server.call("math.add", Value::Null).await;
    assert_eq!(no_params["error"]["code"], -32602, "{no_params}");

    // An unknown method of a deployed module is the spec's -32601.
    let response = server.rpc(json!({"jsonrpc": "2.0", "method": "math.nope", "id": 1})).await;
    assert_eq!(response["error"], json!({"code": -32601, "message": "Method not found"}));
}

#[tokio::test]
async fn text() {
    let server = examples_server().await;
    assert_eq!(server.result("text.word_count", json!(["one two  three\n"])).await, json!(3));
    assert_eq!(server.result("text.slugify", json!(["Hello, World! 2026"])).await, json!("hello-world-2026"));
    assert_eq!(server.result("text.slugify", json!({"text": "A B", "separator": "_"})).await, json!("a_b"));
    assert_eq!(server.result("text.reverse", json!(["héllo"])).await, json!("olléh"));
    assert_eq!(server.result("text.upper", json!(["abc"])).await, json!("ABC"));
    assert_eq!(server.result("text.is_palindrome", json!(["A man, a plan, a canal: Panama"])).await, json!(true));
    assert_eq!(server.result("text.is_palindrome", json!(["abc"])).await, json!(false));
}

#[tokio::test]
async fn json() {
    let server = examples_server().await;
    let order = json!({
        "customer": {"name": "Ada", "email": "ada@example.com"},
        "items": [{"sku": "A-1", "quantity": 2, "unit_price": 9.5}, {"sku": "B-2", "quantity": 1, "unit_price": 1.0}],
        "coupon": "TENOFF"
    });
    let invoice = server.result("json.invoice", json!({"order": order})).await;
    assert_eq!(
        invoice,
        json!({
            "customer": {"name": "Ada", "email": "ada@example.com"},
            "lines": [{"sku": "A-1", "quantity": 2, "total": 19.0}, {"sku": "B-2", "quantity": 1, "total": 1.0}],
            "subtotal": 20.0,
            "discount": 2.0,
            "total": 18.0
        })
    );
    // Optional fields may be left out, and are left out of the answer.
    let plain = json!({"customer": {"name": "Bo"}, "items": [{"sku": "C", "quantity": 3, "unit_price": 0.5}]});
    let invoice = server.result("json.invoice", json!([plain])).await;
    assert_eq!(
        invoice,
        json!({"customer": {"name": "Bo"}, "lines": [{"sku": "C", "quantity": 3, "total": 1.5}], "subtotal": 1.5, "total": 1.5})
    );

    let coupon =
        json!({"customer": {"name": "Bo"}, "items": [{"sku": "C", "quantity": 1, "unit_price": 1}], "coupon": "FREE"});
    let unknown = server.error("json.invoice", json!([coupon])).await;
    assert_eq!(unknown["code"], -32602, "{unknown}");
    assert!(unknown["message"].as_str().unwrap().contains("unknown variant `FREE`"), "{unknown}");
    let empty = json!({"customer": {"name": "Bo"}, "items": []});
    let error = server.error("json.invoice", json!([empty])).await;
    assert_eq!(error, json!({"code": 2, "message": "an order needs at least one item"}));
    let bad = server
        .error(
            "json.invoice",
            json!([{"customer": {"name": "Bo"}, "items": [{"sku": "C", "quantity": -1, "unit_price": 1}]}]),
        )
        .await;
    assert_eq!(bad["code"], -32602);
    assert!(bad["message"].as_str().unwrap().starts_with("invalid parameter `order`"), "{bad}");

    let census = server.result("json.census", json!([{"a": [1, "x", null, {"b": true}]}])).await;
    assert_eq!(census, json!({"nulls": 1, "booleans": 1, "numbers": 1, "strings": 1, "arrays": 1, "objects": 2}));
}

#[tokio::test]
async fn discover_is_a_valid_openrpc_document() {
    let server = examples_server().await;
    for name in ["subtract", "sum", "get_data", "update", "notify_hello", "notify_sum"] {
        server.deploy_ok(name, name).await;
    }
    let document = server.result("rpc.discover", Value::Null).await;

    // @open-rpc/meta-schema 1.14.9 (npm), as JSON. It points at
    // meta.json-schema.tools for "a JSON Schema"; offline, the draft-07
    // meta-schema (bundled with `jsonschema`) stands in for it.
    let meta = include_str!("openrpc-meta-schema.json")
        .replace(
            "https://meta.json-schema.tools/#/definitions/JSONSchemaObject/properties/$ref",
            "#/definitions/schemaRef",
        )
        .replace("https://meta.json-schema.tools/", "http://json-schema.org/draft-07/schema#")
        .replace("https://meta.json-schema.tools", "http://json-schema.org/draft-07/schema#");
    let mut meta: Value = serde_json::from_str(&meta).expect("meta-schema");
    meta["definitions"]["schemaRef"] = json!({"type": "string", "format": "uri-reference"});
    let validator = jsonschema::draft7::new(&meta).expect("meta-schema compiles");
    assert!(!validator.is_valid(&json!({"openrpc": "1.3.2", "methods": []})), "the meta-schema checks nothing");
    let bad_param = json!({"openrpc": "1.3.2", "info": {"title": "t", "version": "1"}, "methods": [{"name": "m", "params": [{"required": true}]}]});
    assert!(!validator.is_valid(&bad_param), "a content descriptor needs name and schema");
    let errors: Vec<String> =
        validator.iter_errors(&document).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "rpc.discover is not valid OpenRPC: {errors:#?}\n{document:#}");

    let methods = document["methods"].as_array().unwrap();
    let add = methods.iter().find(|m| m["name"] == "math.add").expect("math.add described");
    assert_eq!(add["summary"], "Adds two integers.");
    assert_eq!(add["params"][0]["name"], "a");
    assert_eq!(add["params"][0]["required"], true);
    assert_eq!(add["params"][0]["schema"]["type"], "integer");
    let round = methods.iter().find(|m| m["name"] == "math.round").unwrap();
    assert_eq!(round["params"][1]["required"], false);
    let invoice = methods.iter().find(|m| m["name"] == "json.invoice").unwrap();
    assert_eq!(invoice["params"][0]["schema"]["properties"]["customer"]["properties"]["name"]["type"], "string");
    assert!(methods.iter().any(|m| m["name"] == "subtract.subtract"));
}

/// `notes`, the key-value example: ids in order, pages, a missing note, a
/// remove counted once, and notes that survive a restart.
#[tokio::test]
async fn notes() {
    let server = Server::start(&[]);
    server.deploy_ok("notes", "notes").await;
    for i in 1..=120 {
        assert_eq!(server.result("notes.add", json!([format!("note {i}")])).await, json!(i));
    }
    assert_eq!(server.error("notes.add", json!(["  "])).await["code"], -32602);
    assert_eq!(server.result("notes.remove", json!([7])).await, json!(true));
    assert_eq!(server.result("notes.remove", json!([7])).await, json!(false));
    assert_eq!(server.result("notes.count", json!([])).await, json!(119));
    let missing = server.error("notes.get", json!([7])).await;
    assert_eq!((missing["code"].clone(), missing["message"].clone()), (json!(1), json!("no note 7")));
    let first = server.result("notes.list", json!([])).await;
    assert_eq!(first["notes"].as_array().unwrap().len(), 100);
    let rest = server.result("notes.list", json!([first["cursor"]])).await;
    assert_eq!(rest["notes"].as_array().unwrap().len(), 19);
    assert!(rest["cursor"].is_null(), "{rest}");
    let server = server.restart();
    assert_eq!(server.result("notes.get", json!([120])).await["text"], json!("note 120"));
    assert_eq!(server.result("notes.count", json!([])).await, json!(119));
}
