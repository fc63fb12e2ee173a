//! Static files: content types, index.html, and no way out of the directory.

use std::path::PathBuf;
use std::time::Duration;

use hyper::StatusCode;
use kumi_core::{App, Router, Service};
use kumi_http::{HttpRouterExt, HttpTransport};

use crate::support::{get, raw, raw_status};

/// `<tmp>/kumi-static-<uuid>/{secret.txt, public/...}`, removed on drop.
struct Site {
    root: PathBuf,
}

impl Site {
    fn new() -> Site {
        let root = std::env::temp_dir().join(format!("kumi-static-{}", uuid::Uuid::new_v4()));
        let public = root.join("public");
        std::fs::create_dir_all(public.join("docs")).unwrap();
        std::fs::write(root.join("secret.txt"), "TOP SECRET").unwrap();
        std::fs::write(public.join("index.html"), "<h1>kumi</h1>").unwrap();
        std::fs::write(public.join("app.js"), "console.log('kumi')").unwrap();
        std::fs::write(public.join("style.css"), "h1 { color: red }").unwrap();
        std::fs::write(public.join("data.json"), "{\"a\":1}").unwrap();
        std::fs::write(public.join("docs").join("readme.txt"), "read me").unwrap();
        Site { root }
    }

    fn public(&self) -> PathBuf {
        self.root.join("public")
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

struct Files {
    dir: PathBuf,
}

impl Service for Files {
    fn name(&self) -> &str {
        "files"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.http_static("/static", self.dir.clone());
    }
}

#[tokio::test]
async fn files_are_served_with_their_content_types() {
    let site = Site::new();
    let http = HttpTransport::bind("127.0.0.1:0");
    let app = App::new()
        .transport(http.shared())
        .service(Files { dir: site.public() })
        .start()
        .await
        .unwrap();
    let addr = http.local_addr().unwrap();
    for (path, content_type, body) in [
        ("/static/app.js", "text/javascript", "console.log('kumi')"),
        ("/static/style.css", "text/css", "h1 { color: red }"),
        ("/static/data.json", "application/json", "{\"a\":1}"),
        ("/static/index.html", "text/html", "<h1>kumi</h1>"),
        ("/static/", "text/html", "<h1>kumi</h1>"),
        ("/static/docs/readme.txt", "text/plain", "read me"),
    ] {
        let reply = get(addr, path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        let ct = reply.header("content-type").unwrap_or_default();
        assert!(ct.starts_with(content_type), "{path}: {ct}");
        assert_eq!(reply.text(), body, "{path}");
    }
    let missing = get(addr, "/static/nope.txt").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.json()["error"]
        .as_str()
        .unwrap()
        .contains("/static/nope.txt"));
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn path_traversal_never_leaves_the_directory() {
    let site = Site::new();
    let http = HttpTransport::bind("127.0.0.1:0");
    let app = App::new()
        .transport(http.shared())
        .service(Files { dir: site.public() })
        .start()
        .await
        .unwrap();
    let addr = http.local_addr().unwrap();
    for path in [
        "/static/../secret.txt",
        "/static/../../Cargo.toml",
        "/static/%2e%2e/secret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/%2E%2E%2Fsecret.txt",
        "/static/..%2fsecret.txt",
        "/static/docs/../../secret.txt",
        "/static/docs/%2e%2e/%2e%2e/secret.txt",
        "/static/%2e%2e%5csecret.txt",
        "/static/..\\secret.txt",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
    ] {
        let response = raw(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        let status = raw_status(&response);
        assert!(
            status == 404 || status == 400,
            "{path} answered {status}: {response}"
        );
        assert!(
            !response.contains("TOP SECRET"),
            "{path} leaked: {response}"
        );
        assert!(!response.contains("[package]"), "{path} leaked: {response}");
        assert!(!response.contains("root:"), "{path} leaked: {response}");
    }
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_missing_directory_is_a_startup_error_naming_it() {
    let http = HttpTransport::bind("127.0.0.1:0");
    let err = App::new()
        .transport(http.shared())
        .service(Files {
            dir: PathBuf::from("/definitely/not/here"),
        })
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/definitely/not/here") && err.contains("/static"),
        "{err}"
    );
}
