//! Short text inputs that come from requests and configuration: token scopes, challenge
//! headers, API tokens, time bounds, repository names and references, rate limits.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = bonded::auth::jwt::Access::parse_scope(s);
    let _ = bonded::client::parse_challenge(s);
    let _ = bonded::auth::token::ApiToken::parse(s);
    let _ = bonded::db::parse_time(s);
    let _ = s.parse::<bonded::oci::RepositoryName>();
    let _ = s.parse::<bonded::oci::Reference>();
    let _ = s.parse::<bonded::oci::Digest>();
    let _ = s.parse::<bonded::api::ratelimit::Rate>();
    let _ = bonded::auth::check_pattern(s);
});
