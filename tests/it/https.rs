//! HTTPS for the bridge's own server, with and without client certificates. Certificates
//! are made for each run with the `openssl` command (Debian's, in the base image).

use std::{path::Path, process::Command, sync::Arc};

use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    ClientConfig, RootCertStore,
};

use crate::support::{Options, TestBridge};

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all in `dir`.
fn make_pki(dir: &Path) {
    // Extensions make these X.509 v3 certificates; rustls refuses v1.
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=stormbridge test CA",
            "-days",
            "2",
        ],
    );
    for name in ["server", "client"] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            "",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "",
            "-days",
            "2",
        ];
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        args[3] = &csr;
        args[10] = &pem;
        let ext = format!("{name}.ext");
        args.extend(["-extfile", &ext]);
        openssl(dir, &args);
    }
}

fn client(dir: &Path, with_client_cert: bool) -> awc::Client {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.join("ca.pem")).expect("ca") {
        roots.add(cert.expect("cert")).expect("add");
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
    let config = if with_client_cert {
        let certs: Vec<_> = CertificateDer::pem_file_iter(dir.join("client.pem"))
            .expect("client cert")
            .map(|c| c.expect("cert"))
            .collect();
        let key = PrivateKeyDer::from_pem_file(dir.join("client.key")).expect("client key");
        builder
            .with_client_auth_cert(certs, key)
            .expect("client auth")
    } else {
        builder.with_no_client_auth()
    };
    awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(Arc::new(config)))
        .finish()
}

#[actix_rt::test]
async fn https_with_required_client_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_pki(dir.path());
    let p = |f: &str| dir.path().join(f).display().to_string();
    let opts = Options {
        http_toml: format!(
        "[http]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\nclient_ca = \"{}\"\n",
        p("server.pem"),
        p("server.key"),
            p("ca.pem")
        ),
        ..Options::default()
    };
    let b = TestBridge::start_with(opts).await;
    let url = format!("https://127.0.0.1:{}/health", b.app.http_addr.port());

    let resp = client(dir.path(), true)
        .get(&url)
        .send()
        .await
        .expect("TLS with a client certificate");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        client(dir.path(), false).get(&url).send().await.is_err(),
        "no client certificate must be refused"
    );
    let plain = format!("http://127.0.0.1:{}/health", b.app.http_addr.port());
    assert!(
        b.http
            .get(&plain)
            .send()
            .await
            .map(|r| r.status().as_u16() != 200)
            .unwrap_or(true),
        "plain HTTP must not be served"
    );
}
