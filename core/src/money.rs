//! Money: exact decimal amounts ([`rust_decimal::Decimal`], never binary floating point) and
//! ISO-4217 currency codes.

pub use rust_decimal::Decimal;

/// Active ISO-4217 alphabetic codes (including fund and precious-metal codes).
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
    "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP",
    "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP",
    "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS",
    "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW",
    "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD",
    "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN",
    "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR",
    "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL",
    "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY",
    "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES",
    "VND", "VUV", "WST", "XAF", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XCG", "XDR",
    "XOF", "XPD", "XPF", "XPT", "XSU", "XTS", "XUA", "XXX", "YER", "ZAR", "ZMW", "ZWG", "ZWL",
];

/// The canonical (upper-case) form of `code` if it is an ISO-4217 currency code.
pub fn currency(code: &str) -> Result<String, String> {
    let upper = code.trim().to_ascii_uppercase();
    if ISO_4217.binary_search(&upper.as_str()).is_ok() {
        Ok(upper)
    } else {
        Err(format!(
            "'{code}' is not an ISO-4217 currency code (such as USD, EUR, GBP)"
        ))
    }
}

/// The most fractional digits an amount may carry: enough for every currency's minor unit
/// and for unit prices, few enough that sums cannot lose precision.
pub const MAX_SCALE: u32 = 4;

/// Checks that `amount` is a non-negative amount with at most [`MAX_SCALE`] decimals.
pub fn amount(amount: Decimal) -> Result<Decimal, String> {
    if amount.is_sign_negative() && !amount.is_zero() {
        return Err(format!("must not be negative (got {amount})"));
    }
    if amount.normalize().scale() > MAX_SCALE {
        return Err(format!(
            "has more than {MAX_SCALE} decimal places (got {amount})"
        ));
    }
    Ok(amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_list_is_sorted_so_binary_search_works() {
        assert!(ISO_4217.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn currencies() {
        assert_eq!(currency("eur").as_deref(), Ok("EUR"));
        assert!(currency("EURO").unwrap_err().contains("ISO-4217"));
        assert!(currency("ABC").is_err());
    }

    #[test]
    fn amounts() {
        assert!(
            amount(Decimal::new(-1, 0))
                .unwrap_err()
                .contains("negative")
        );
        assert!(
            amount(Decimal::new(12345, 5))
                .unwrap_err()
                .contains("decimal places")
        );
        assert_eq!(amount(Decimal::new(1999, 2)), Ok(Decimal::new(1999, 2)));
    }
}
