//! A real JupyterHub (PyPI, in the tool cache) with the dummy authenticator and the local-process spawner, its
//! proxy (npm `configurable-http-proxy`) and API on free loopback ports; stopped on drop, with the single-user
//! servers it spawned.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sdp_testkit::{free_port, KillOnDrop};

pub struct JupyterHub {
    pub url: String,
    /// A service token with the scopes the staging service needs.
    pub token: String,
    pub dir: tempfile::TempDir,
    _hub: KillOnDrop,
}

fn tools() -> PathBuf {
    std::env::var_os("SDP_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache/sdp/tools"))
}

impl JupyterHub {
    /// Starts JupyterHub with `users` allowed; ready when its API answers.
    pub async fn start(users: &[&str]) -> JupyterHub {
        let venv = tools().join("jupyterhub/bin");
        let proxy = tools().join("chp/node_modules/.bin/configurable-http-proxy");
        for p in [venv.join("jupyterhub"), venv.join("jupyterhub-singleuser"), proxy.clone()] {
            assert!(
                p.is_file(),
                "{} is missing: run scripts/setup (installs JupyterHub and configurable-http-proxy)",
                p.display()
            );
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let (port, hub_port, api_port) = (free_port(), free_port(), free_port());
        let token = format!("staging-{}-{}", std::process::id(), port);
        let users_py = users.iter().map(|u| format!("{u:?}")).collect::<Vec<_>>().join(", ");
        for u in users {
            std::fs::create_dir_all(dir.path().join("home").join(u)).unwrap();
        }
        let config = format!(
            r#"
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = ["{proxy}"]
c.JupyterHub.db_url = "sqlite:///{dir}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{dir}/cookie_secret"
c.JupyterHub.pid_file = "{dir}/hub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {{{users_py}}}
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = "{dir}/home/{{username}}"
c.Spawner.ip = "127.0.0.1"
c.Spawner.cmd = ["{singleuser}"]
c.Spawner.args = ["--allow-root"]
c.Spawner.start_timeout = 60
c.JupyterHub.services = [{{"name": "staging", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{"name": "staging", "scopes": ["admin:users", "servers", "access:servers"], "services": ["staging"]}}]
"#,
            proxy = proxy.display(),
            dir = dir.path().display(),
            singleuser = venv.join("jupyterhub-singleuser").display(),
        );
        let config_path = dir.path().join("jupyterhub_config.py");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("hub.log")).unwrap();
        let path = format!("{}:{}", venv.display(), std::env::var("PATH").unwrap_or_default());
        let child = Command::new(venv.join("jupyterhub"))
            .arg("-f")
            .arg(&config_path)
            .current_dir(dir.path())
            .env("PATH", path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start JupyterHub");
        let hub = JupyterHub { url: format!("http://127.0.0.1:{port}"), token, _hub: KillOnDrop(child), dir };
        let start = Instant::now();
        let client = sdp_staging::http_client().build().unwrap();
        loop {
            let ready = client
                .get(format!("{}/hub/api/users", hub.url))
                .header("Authorization", format!("token {}", hub.token))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            let log = std::fs::read_to_string(hub.dir.path().join("hub.log")).unwrap_or_default();
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "JupyterHub did not answer within 60 s; its log:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for u in users {
            // Allowed users are in the Hub's database once it runs; creating them again answers 409.
            let resp = client
                .post(format!("{}/hub/api/users/{u}", hub.url))
                .header("Authorization", format!("token {}", hub.token))
                .send()
                .await
                .unwrap();
            assert!(matches!(resp.status().as_u16(), 201 | 409), "creating {u}: {}", resp.status());
        }
        hub
    }

    /// Settings edit pointing a staging service at this hub with its service token.
    pub fn staging_settings(&self) -> impl FnOnce(&mut sdp_staging::Settings) {
        let (url, token) = (self.url.clone(), self.token.clone());
        move |settings| {
            settings.jupyterhub_url = Some(url);
            settings.jupyterhub_token = Some(sdp_staging::config::Secret(token));
        }
    }

    /// The folder the user's single-user server serves.
    pub fn home(&self, user: &str) -> PathBuf {
        self.dir.path().join("home").join(user)
    }
}

impl Drop for JupyterHub {
    /// SIGTERM first: the hub then stops the single-user servers it spawned and its proxy (`cleanup_servers`);
    /// the SIGKILL of its handle afterwards would leave them running.
    fn drop(&mut self) {
        let hub = &mut self._hub.0;
        let _ = Command::new("kill").args(["-TERM", &hub.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && matches!(hub.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
