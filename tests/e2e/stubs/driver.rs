//! Calls every example method through the generated Rust stub (`stub.rs`),
//! with the blocking client, a batch, and the async client.
//! Usage: stub-driver URL calls|removed|stopped, URL http:// or ws:// (then
//! also concurrent calls on the one connection, and calls after the server
//! closed it for idleness).

mod stub;

use stub::{Coupon, Customer, Item, Order, Procedures as _};
use wasmrpc_client::serde_json::json;
use wasmrpc_client::{blocking, Error};

fn main() {
    let mut args = std::env::args().skip(1);
    let (url, phase) = (args.next().expect("URL"), args.next().expect("phase"));
    let client = blocking::Client::new(&url).expect("a runtime").with_timeout(std::time::Duration::from_secs(10));
    match phase.as_str() {
        "calls" => {
            calls(&client);
            async_calls(&url);
            if url.starts_with("ws://") {
                websocket(&client, &url);
            }
        }
        "removed" => {
            let error = rpc_error(client.text().upper("x"));
            assert_eq!((error.code, error.message.as_str()), (-32601, "Method not found"));
        }
        "stopped" => {
            let error = client.math().add(1, 2).unwrap_err();
            assert!(error.is_transport(), "{error:?}");
            assert!(error.to_string().contains("cannot reach the server"), "{error}");
        }
        other => panic!("unknown phase {other}"),
    }
    println!("ok");
}

fn rpc_error<T: std::fmt::Debug>(result: Result<T, Error>) -> wasmrpc_client::RpcError {
    match result {
        Err(Error::Rpc(error)) => error,
        other => panic!("expected an RpcError, got {other:?}"),
    }
}

fn calls(client: &blocking::Client) {
    assert_eq!(client.math().add(2, 3).unwrap(), 5);
    assert_eq!(client.math().subtract(5, 3).unwrap(), 2);
    assert_eq!(client.math().multiply(6, 7).unwrap(), 42);
    assert_eq!(client.math().divide(1.0, 4.0).unwrap(), 0.25);
    let error = rpc_error(client.math().divide(1.0, 0.0));
    assert_eq!((error.code, error.message.as_str(), error.data), (1, "division by zero", Some(json!({"a": 1.0}))));
    assert_eq!(client.math().round(3.14159, None).unwrap(), 3.0);
    assert_eq!(client.math().round(3.14159, Some(2)).unwrap(), 3.14);
    let stats = client.math().stats(vec![1.0, 2.0, 3.0]).unwrap();
    assert_eq!((stats.count, stats.sum, stats.mean), (3, 6.0, Some(2.0)));
    assert_eq!(client.math().stats(vec![]).unwrap().mean, None);

    assert_eq!(client.text().word_count("one two  three").unwrap(), 3);
    assert_eq!(client.text().slugify("Hello, World!", None).unwrap(), "hello-world");
    assert_eq!(client.text().slugify("Hello, World!", Some("_".into())).unwrap(), "hello_world");
    assert_eq!(client.text().reverse("abc").unwrap(), "cba");
    assert_eq!(client.text().upper("abc").unwrap(), "ABC");
    assert!(client.text().is_palindrome("A man, a plan, a canal: Panama").unwrap());

    let ada = Customer { name: "Ada".into(), email: Some("ada@example.com".into()) };
    let order = Order {
        customer: ada.clone(),
        items: vec![Item { sku: "A-1".into(), quantity: 2, unit_price: 9.5 }],
        coupon: Some(Coupon::TENOFF),
    };
    let invoice = client.json().invoice(order).unwrap();
    assert_eq!((invoice.subtotal, invoice.discount, invoice.total), (19.0, Some(1.9), 17.1));
    assert_eq!(invoice.customer, ada);
    assert_eq!(invoice.lines.iter().map(|l| (l.sku.as_str(), l.quantity, l.total)).collect::<Vec<_>>(), [("A-1", 2, 19.0)]);
    let bo = Customer { name: "Bo".into(), email: None };
    let plain = Order { customer: bo, items: vec![Item { sku: "B".into(), quantity: 1, unit_price: 2.5 }], coupon: None };
    let plain = client.json().invoice(plain).unwrap();
    assert_eq!((plain.discount, plain.total), (None, 2.5));
    let empty = Order { customer: Customer { name: "Cy".into(), email: None }, items: vec![], coupon: None };
    assert_eq!(rpc_error(client.json().invoice(empty)).code, 2);
    let census = client.json().census(json!({"a": [1, "x", null, true], "b": {}})).unwrap();
    assert_eq!(
        (census.objects, census.arrays, census.numbers, census.strings, census.nulls, census.booleans),
        (2, 1, 1, 1, 1, 1)
    );

    assert_eq!(client.subtract().subtract(42, 23).unwrap(), 19);
    assert_eq!(client.sum().sum(None, None, None).unwrap(), 0);
    assert_eq!(client.sum().sum(Some(1), Some(2), None).unwrap(), 3);
    assert_eq!(client.get_data().get_data().unwrap(), ("hello".to_owned(), 5));
    client.update().update(Some(1), Some(2), Some(3), Some(4), Some(5)).unwrap();
    client.notify_hello().notify_hello(7).unwrap();
    client.notify_sum().notify_sum(1, 2, 3).unwrap();

    let batch = client.batch();
    let total = batch.math().add(2, 3);
    let quotient = batch.math().divide(1.0, 0.0);
    let shout = batch.text().upper("x");
    let answers = batch.send().unwrap();
    assert_eq!(answers.get(total).unwrap(), 5);
    assert_eq!(answers.get(shout).unwrap(), "X");
    assert_eq!(rpc_error(answers.get(quotient)).code, 1);
}

fn websocket(client: &blocking::Client, url: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let async_client = wasmrpc_client::Client::new(url);
    runtime.block_on(async {
        // Concurrent calls on one connection, answered in any order, one failing.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            tasks.spawn(async_client.math().add(i, 1000));
        }
        let quotient = tokio::spawn(async_client.math().divide(1.0, 0.0));
        let mut sums: Vec<i64> = tasks.join_all().await.into_iter().map(Result::unwrap).collect();
        sums.sort();
        assert_eq!(sums, (1000..1020).collect::<Vec<_>>());
        assert_eq!(rpc_error(quotient.await.unwrap()).code, 1);
        // The server closes an idle connection (after 1 s here): the next
        // call of either client connects anew.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        assert_eq!(async_client.math().add(2, 2).await.unwrap(), 4);
    });
    assert_eq!(client.math().add(1, 1).unwrap(), 2);
}

fn async_calls(url: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let client = wasmrpc_client::Client::new(url);
        assert_eq!(client.math().add(2, 3).await.unwrap(), 5);
        assert_eq!(rpc_error(client.math().divide(1.0, 0.0).await).code, 1);
        let batch = client.batch();
        let sum = batch.sum().sum(Some(1), None, Some(3));
        let answers = batch.send().await.unwrap();
        assert_eq!(answers.get(sum).unwrap(), 4);
    });
}
