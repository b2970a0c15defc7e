//! End-to-end tests of netpol on the repository's own profiles (`e2e/`). Privileged tests of
//! the flow observer will live here too. This library target is empty on purpose.
