//! Rate limits on the unauthenticated endpoints (enrolment, key login): per client address and per
//! account, so neither one address nor many addresses can hammer one account. In memory, per node.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rfl_domain::MemberId;

use crate::error::ApiError;

pub struct AuthLimits {
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    per_account: DefaultKeyedRateLimiter<MemberId>,
}

impl AuthLimits {
    pub fn new(per_address_per_minute: u32, per_account_per_minute: u32) -> AuthLimits {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        AuthLimits {
            per_address: RateLimiter::keyed(quota(per_address_per_minute)),
            per_account: RateLimiter::keyed(quota(per_account_per_minute)),
        }
    }

    /// Counts one attempt from `address` (unknown addresses share one bucket).
    pub fn address(&self, address: Option<IpAddr>) -> Result<(), ApiError> {
        let key = address.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        self.per_address
            .check_key(&key)
            .map_err(|_| ApiError::TooManyRequests)?;
        self.forget_idle();
        Ok(())
    }

    /// Counts one attempt on `account`.
    pub fn account(&self, account: MemberId) -> Result<(), ApiError> {
        self.per_account
            .check_key(&account)
            .map_err(|_| ApiError::TooManyRequests)
    }

    /// Keeps memory bounded: buckets that are full again are dropped.
    fn forget_idle(&self) {
        if self.per_address.len() > 10_000 {
            self.per_address.retain_recent();
        }
        if self.per_account.len() > 10_000 {
            self.per_account.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_per_key() {
        let l = AuthLimits::new(3, 2);
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        for _ in 0..3 {
            assert!(l.address(a).is_ok());
        }
        assert!(matches!(l.address(a), Err(ApiError::TooManyRequests)));
        assert!(l.address(b).is_ok(), "another address has its own budget");
        let m = MemberId::new();
        assert!(l.account(m).is_ok());
        assert!(l.account(m).is_ok());
        assert!(l.account(m).is_err());
        assert!(l.account(MemberId::new()).is_ok());
    }
}
