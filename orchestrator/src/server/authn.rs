//! Authentication: client certificates from the cluster CA (CN = user, O = groups) and bearer
//! tokens from a static token file (`token,user,uid,"group1,group2"` per line), re-read when it
//! changes. Anonymous requests are refused.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use rustls::pki_types::CertificateDer;

use crate::api::User;

pub const AUTHENTICATED: &str = crate::api::request::AUTHENTICATED_GROUP;

pub fn user_from_cert(cert: &CertificateDer<'_>) -> Option<User> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let mut groups: Vec<String> =
        subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_owned)).collect();
    groups.push(AUTHENTICATED.into());
    Some(User { name, groups, ..Default::default() })
}

/// Splits one CSV line, honouring double quotes.
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().map(|s| s.push(c)).unwrap_or(()),
        }
    }
    out.into_iter().map(|s| s.trim().to_owned()).collect()
}

pub fn parse_token_file(text: &str) -> HashMap<String, User> {
    let mut tokens = HashMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let f = csv_fields(line);
        if f.len() < 2 || f[0].is_empty() || f[1].is_empty() {
            tracing::warn!("token file: skipping a line with fewer than two fields");
            continue;
        }
        let mut groups: Vec<String> = f
            .get(3)
            .map(|g| {
                g.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned).collect()
            })
            .unwrap_or_default();
        groups.push(AUTHENTICATED.into());
        tokens.insert(
            f[0].clone(),
            User {
                name: f[1].clone(),
                uid: f.get(2).cloned().unwrap_or_default(),
                groups,
                ..Default::default()
            },
        );
    }
    tokens
}

pub struct TokenFile {
    path: Option<PathBuf>,
    cache: Mutex<(Option<SystemTime>, HashMap<String, User>)>,
}

impl TokenFile {
    pub fn new(path: Option<PathBuf>) -> Self {
        Self { path, cache: Mutex::new((None, HashMap::new())) }
    }

    pub fn lookup(&self, token: &str) -> Option<User> {
        let path = self.path.as_ref()?;
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let mut cache = self.cache.lock().ok()?;
        if mtime != cache.0 {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            *cache = (mtime, parse_token_file(&text));
        }
        cache.1.get(token).cloned()
    }
}

impl crate::api::engine::token_review::TokenAuthenticator for TokenFile {
    fn authenticate(&self, token: &str) -> Option<User> {
        self.lookup(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lines() {
        let t = parse_token_file("# comment\nabc,alice,1001,\"dev,ops\"\nxyz,bob\nbad\n");
        assert_eq!(t.len(), 2);
        assert_eq!(t["abc"].groups, ["dev", "ops", AUTHENTICATED]);
        assert_eq!(t["xyz"].name, "bob");
    }
}
