//! The reason phrase of the HTTP status line, which ureq does not keep.
//!
//! Proxmox VE puts an error's message into the status line (`HTTP/1.1 403 Permission check
//! failed (/vms/100, VM.Audit)`: the first line of the message, pve-http-server
//! `PVE::APIServer::AnyEvent::response`). Only libpve-http-server-perl 5.2.0 (January 2025,
//! commit 9a2112e "fix #6503: return api handler errors in the json body") also writes it into
//! the JSON body as `message`; older PVE 8 hosts answer `{"data":null}` and the reason exists only
//! in the status line. ureq (through the `http` crate) drops the reason phrase, so this connector
//! wraps the transport and reads the status line of each response as it arrives. ureq is
//! blocking and does its I/O on the calling thread, so the reason is handed over in a
//! thread-local that [`take`] empties after each request.

use std::cell::RefCell;

use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

thread_local! {
    static LAST_REASON: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Forget any reason seen before (call before a request).
pub(crate) fn clear() {
    LAST_REASON.with(|r| r.borrow_mut().take());
}

/// The reason phrase of the last response received on this thread, if it had one.
pub(crate) fn take() -> Option<String> {
    LAST_REASON.with(|r| r.borrow_mut().take())
}

/// Wraps every transport the chain before it makes in a [`StatusLineTransport`].
#[derive(Debug, Default)]
pub(crate) struct StatusLineConnector;

impl<In: Transport> Connector<In> for StatusLineConnector {
    type Out = StatusLineTransport<In>;

    fn connect(
        &self,
        _: &ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| StatusLineTransport {
            inner,
            awaiting_status_line: false,
        }))
    }
}

/// Passes everything through; after a request was sent, reads the reason phrase from the first
/// line of the answer (ureq sends one request at a time per connection, so the next input
/// after a request starts with the response's status line).
#[derive(Debug)]
pub(crate) struct StatusLineTransport<T> {
    inner: T,
    awaiting_status_line: bool,
}

impl<T: Transport> StatusLineTransport<T> {
    fn sniff(&mut self) {
        if !self.awaiting_status_line {
            return;
        }
        let input = self.inner.buffers().input();
        let Some(end) = input.windows(2).position(|w| w == b"\r\n") else {
            return; // not the whole line yet
        };
        self.awaiting_status_line = false;
        let reason = parse_reason(&input[..end]);
        LAST_REASON.with(|r| *r.borrow_mut() = reason);
    }
}

impl<T: Transport> Transport for StatusLineTransport<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.sniff();
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.awaiting_status_line = true;
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let progress = self.inner.await_input(timeout)?;
        self.sniff();
        Ok(progress)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// `HTTP/1.1 400 Parameter verification failed.` → `Parameter verification failed.`; `None`
/// for an empty reason or a line that is no status line.
fn parse_reason(line: &[u8]) -> Option<String> {
    let line = String::from_utf8_lossy(line);
    let rest = line.strip_prefix("HTTP/")?;
    let mut parts = rest.splitn(3, ' ');
    let (_version, code) = (parts.next()?, parts.next()?);
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(parts.next()?.trim().to_string()).filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::parse_reason;

    #[test]
    fn reasons_from_status_lines() {
        assert_eq!(
            parse_reason(b"HTTP/1.1 403 Permission check failed (/vms/100, VM.Audit)").as_deref(),
            Some("Permission check failed (/vms/100, VM.Audit)")
        );
        assert_eq!(parse_reason(b"HTTP/1.1 200 OK").as_deref(), Some("OK"));
        assert_eq!(parse_reason(b"HTTP/1.1 500 ").as_deref(), None);
        assert_eq!(parse_reason(b"HTTP/1.1 500").as_deref(), None);
        assert_eq!(parse_reason(b"garbage 500 x").as_deref(), None);
    }
}
