//! Collects every error of one derive, so the user fixes them in one pass
//! rather than one compile at a time.

/// The errors found so far, combined into one `syn::Error`.
#[derive(Default)]
pub(crate) struct Diagnostics {
    errors: Option<syn::Error>,
}

impl Diagnostics {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records an error; parsing and validation go on after it.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.errors {
            Some(errors) => errors.combine(error),
            None => self.errors = Some(error),
        }
    }

    /// `Err` with every recorded error, if there was any, from the top of the
    /// source down.
    pub(crate) fn finish(self) -> syn::Result<()> {
        let Some(errors) = self.errors else {
            return Ok(());
        };
        let mut errors: Vec<syn::Error> = errors.into_iter().collect();
        // The checks run key by key, then value by value; rustc lists errors
        // by line, and a list that jumps back and forth is harder to work
        // through. Positions are only known inside a running macro, not in
        // unit tests, which see the order the checks ran.
        if proc_macro::is_available() {
            // `Span::unwrap` converts to a compiler span; it cannot fail here.
            errors.sort_by_key(|error| {
                let span = error.span().unwrap();
                (span.line(), span.column())
            });
        }
        let combined = errors.into_iter().reduce(|mut combined, error| {
            combined.combine(error);
            combined
        });
        combined.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::Span;

    #[test]
    fn keeps_every_error_in_order() {
        let mut diagnostics = Diagnostics::new();
        assert!(Diagnostics::new().finish().is_ok());
        diagnostics.push(syn::Error::new(Span::call_site(), "first"));
        diagnostics.push(syn::Error::new(Span::call_site(), "second"));
        let messages: Vec<String> = diagnostics
            .finish()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(messages, ["first", "second"]);
    }
}
