//! Route registration mistakes are startup errors naming the route; the banner shows real URLs.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use kumi_core::{App, Router, Service};
use kumi_http::{HttpRouterExt, HttpTransport, Method};

use crate::support::get;

async fn ok() -> &'static str {
    "ok"
}

async fn gone() -> &'static str {
    "gone"
}

/// A service whose routes come from a closure, to try mistakes.
struct Routes {
    name: &'static str,
    register: fn(&mut Router<Routes>),
}

impl Service for Routes {
    fn name(&self) -> &str {
        self.name
    }

    fn routes(&self, router: &mut Router<Self>) {
        (self.register)(router);
    }
}

async fn start_error(services: Vec<Routes>) -> String {
    let http = HttpTransport::bind("127.0.0.1:0");
    let mut app = App::new().transport(http.shared());
    for s in services {
        app = app.service(s);
    }
    match app.start().await {
        Ok(_) => panic!("started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn the_same_route_in_two_services_is_refused() {
    let err = start_error(vec![
        Routes {
            name: "first",
            register: |r| {
                r.get("/x", ok);
            },
        },
        Routes {
            name: "second",
            register: |r| {
                r.get("/x", ok).name("again");
            },
        },
    ])
    .await;
    assert!(
        err.contains("GET /x") && err.contains("second.again") && err.contains("first.ok"),
        "{err}"
    );
}

#[tokio::test]
async fn the_same_route_twice_in_one_service_is_refused() {
    let err = start_error(vec![Routes {
        name: "dup",
        register: |r| {
            r.get("/x", ok);
            r.get("/x", gone);
        },
    }])
    .await;
    assert!(err.contains("GET /x") && err.contains("dup.gone"), "{err}");
}

#[tokio::test]
async fn old_path_syntax_and_bad_methods_are_refused() {
    let err = start_error(vec![Routes {
        name: "old",
        register: |r| {
            r.get("/orders/:id", ok);
        },
    }])
    .await;
    assert!(
        err.contains("/orders/:id") && err.contains("{param}"),
        "{err}"
    );
    let err = start_error(vec![Routes {
        name: "odd",
        register: |r| {
            r.http(Method::from_bytes(b"PURGE").unwrap(), "/cache", ok);
        },
    }])
    .await;
    assert!(
        err.contains("PURGE /cache") && err.contains("odd.ok"),
        "{err}"
    );
}

#[tokio::test]
async fn two_error_handlers_for_one_status_are_refused() {
    let err = start_error(vec![
        Routes {
            name: "first",
            register: |r| {
                r.http_error(StatusCode::NOT_FOUND, ok);
            },
        },
        Routes {
            name: "second",
            register: |r| {
                r.http_error(StatusCode::NOT_FOUND, ok);
            },
        },
    ])
    .await;
    assert!(
        err.contains("first") && err.contains("second") && err.contains("404"),
        "{err}"
    );
}

#[tokio::test]
async fn error_handlers_are_for_error_statuses() {
    let err = start_error(vec![Routes {
        name: "odd",
        register: |r| {
            r.http_error(302, ok).name("moved");
        },
    }])
    .await;
    assert!(
        err.contains("http error handler odd.moved")
            && err.contains("error handlers are for error statuses, 400 to 599, not 302"),
        "{err}"
    );
    let err = start_error(vec![Routes {
        name: "odd",
        register: |r| {
            r.http_error(1000, ok);
        },
    }])
    .await;
    assert!(err.contains("1000 is not an HTTP status"), "{err}");
}

#[tokio::test]
async fn a_config_error_on_a_route_names_it() {
    let err = start_error(vec![Routes {
        name: "odd",
        register: |r| {
            r.get("/x", ok)
                .name("x")
                .config_error("first")
                .config_error("second");
        },
    }])
    .await;
    assert!(
        err.contains("GET /x (odd.x)") && err.contains("first; second"),
        "{err}"
    );
}

struct Two;

impl Two {
    async fn get(self: Arc<Self>) -> &'static str {
        "get"
    }
}

struct Three;

impl Three {
    async fn post(self: Arc<Self>) -> &'static str {
        "post"
    }
}

impl Service for Two {
    fn name(&self) -> &str {
        "two"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router.get("/shared", Self::get);
    }
}

impl Service for Three {
    fn name(&self) -> &str {
        "three"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router.post("/shared", Self::post);
        router.http_error(404, gone).name("not_found");
    }
}

#[tokio::test]
async fn services_share_one_server_and_the_banner_shows_real_urls() {
    let http = HttpTransport::bind("127.0.0.1:0");
    let app = App::new()
        .transport(http.shared())
        .service(Two)
        .service(Three)
        .start()
        .await
        .unwrap();
    let addr = http.local_addr().unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(get(addr, "/shared").await.text(), "get");
    let posted = crate::support::send(
        addr,
        crate::support::build(
            hyper::Method::POST,
            "/shared",
            None,
            bytes::Bytes::new(),
            &[],
        ),
    )
    .await;
    assert_eq!(posted.text(), "post");
    let lines = app.transport_lines();
    let url = format!("http://{addr}");
    let get_line = lines
        .iter()
        .find(|l| l.contains("GET /shared"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(
        get_line.contains("two.get") && get_line.ends_with(&url),
        "{get_line}"
    );
    assert!(lines
        .iter()
        .any(|l| l.contains("POST /shared") && l.contains("three.post")));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("error 404") && l.contains("-> three.not_found")),
        "{lines:?}"
    );
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}
