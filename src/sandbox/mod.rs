//! Sandbox SaaS APIs (a CRM-like and a billing-like API) on loopback, for `runner demo`,
//! the tests and the benchmarks.
