//! Names outside the cluster zone go to the node's own resolvers (its /etc/resolv.conf), as
//! CoreDNS's `forward . /etc/resolv.conf` does: the query is relayed unchanged and the first
//! answer returned. A resolver that does not answer in time is skipped; none answering is
//! SERVFAIL.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one upstream resolver gets.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The node's resolvers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Upstreams(pub Vec<SocketAddr>);

impl Upstreams {
    /// The `nameserver` lines of a resolv.conf, leaving out `own` (this server: a node whose
    /// resolv.conf names its pods' DNS address would ask itself forever).
    pub fn parse(resolv_conf: &str, own: IpAddr) -> Upstreams {
        let servers = resolv_conf
            .lines()
            .filter_map(|l| l.split_whitespace().collect::<Vec<_>>().get(..2).map(<[_]>::to_vec))
            .filter(|w| w[0] == "nameserver")
            .filter_map(|w| w[1].split('%').next()?.parse::<IpAddr>().ok())
            .filter(|ip| *ip != own && !ip.is_unspecified())
            .map(|ip| SocketAddr::new(ip, 53))
            .collect();
        Upstreams(servers)
    }

    /// The resolvers of resolv.conf file `path` (none when it cannot be read).
    pub fn from_file(path: &std::path::Path, own: IpAddr) -> Upstreams {
        Self::parse(&std::fs::read_to_string(path).unwrap_or_default(), own)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The answer to `query` from the first resolver that gives one, over UDP (`tcp`: over
    /// TCP, for clients that came by TCP after a truncated answer).
    pub async fn ask(&self, query: &[u8], tcp: bool) -> Vec<u8> {
        for server in &self.0 {
            let attempt =
                if tcp { over_tcp(*server, query).await } else { over_udp(*server, query).await };
            match attempt {
                Ok(answer) => return answer,
                Err(e) => tracing::debug!(%server, "forwarding a DNS query: {e}"),
            }
        }
        servfail(query)
    }
}

/// A SERVFAIL answer to `query` (well-formed whatever the query was).
pub fn servfail(query: &[u8]) -> Vec<u8> {
    let id = u16::from_be_bytes([
        query.first().copied().unwrap_or(0),
        query.get(1).copied().unwrap_or(0),
    ]);
    let mut m = Message::error_msg(id, OpCode::Query, ResponseCode::ServFail);
    if let Ok(q) = Message::from_vec(query) {
        m.add_queries(q.queries);
        m.metadata.recursion_desired = q.metadata.recursion_desired;
    }
    m.to_vec().unwrap_or_default()
}

async fn over_udp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr =
        if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        // Only the answer to this query (same id) counts.
        if n >= 2 && buf[..2] == query[..2.min(query.len())] {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn over_tcp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(server).await?;
        let len = u16::try_from(query.len()).map_err(std::io::Error::other)?;
        s.write_all(&len.to_be_bytes()).await?;
        s.write_all(query).await?;
        let n = s.read_u16().await?;
        let mut buf = vec![0u8; usize::from(n)];
        s.read_exact(&mut buf).await?;
        Ok(buf)
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_except_this_server() {
        let conf = "# comment\nsearch example.com\nnameserver 10.0.0.2\nnameserver  fe80::1%eth0\n\
                    nameserver 10.88.0.1\nnameserver\nnameserver bogus\noptions ndots:5\nnameserver 0.0.0.0\n";
        let own: IpAddr = "10.88.0.1".parse().unwrap();
        let got = Upstreams::parse(conf, own);
        let want: Vec<SocketAddr> =
            vec!["10.0.0.2:53".parse().unwrap(), "[fe80::1]:53".parse().unwrap()];
        assert_eq!(got.0, want);
        assert!(Upstreams::parse("", own).is_empty());
    }

    #[test]
    fn nobody_answering_is_servfail_for_the_same_question() {
        use hickory_proto::op::Query;
        use hickory_proto::rr::{Name, RecordType};
        let mut q = Message::query();
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(Name::from_ascii("example.com.").unwrap(), RecordType::A));
        let bytes = q.to_vec().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let answer = rt.block_on(Upstreams(Vec::new()).ask(&bytes, false));
        let m = Message::from_vec(&answer).unwrap();
        assert_eq!(
            (m.metadata.id, m.metadata.response_code),
            (q.metadata.id, ResponseCode::ServFail)
        );
        assert_eq!(m.queries, q.queries);
        // Garbage in: still a well-formed SERVFAIL, no panic.
        let m = Message::from_vec(&servfail(&[1])).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    }
}
