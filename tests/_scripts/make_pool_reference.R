# Reference values for Rubin's rules (toolkit.analysis.impute.rubin_pool): mice::pool.scalar on
# fixed per-imputation estimates and variances.  Run once from the repository root:
#   Rscript tests/_scripts/make_pool_reference.R    (needs r-cran-mice and r-cran-jsonlite)
library(mice)
library(jsonlite)
cases <- list(
  list(name = "five imputations, small sample", Q = c(0.52, 0.61, 0.47, 0.58, 0.55),
       U = c(0.010, 0.012, 0.009, 0.011, 0.010), n = 120, k = 4),
  list(name = "twenty imputations, large sample", Q = seq(-0.31, -0.12, length.out = 20) + c(0.01, -0.02),
       U = rep(c(0.0021, 0.0024, 0.0019, 0.0022), 5), n = 4352, k = 13),
  list(name = "no between-imputation variance", Q = c(1.2, 1.2, 1.2), U = c(0.05, 0.05, 0.05), n = 300, k = 2),
  list(name = "infinite complete-data df", Q = c(0.1, 0.3, 0.2, 0.25), U = c(0.02, 0.03, 0.025, 0.02),
       n = Inf, k = 1)
)
out <- lapply(cases, function(cs) {
  p <- pool.scalar(cs$Q, cs$U, n = cs$n, k = cs$k)
  list(name = cs$name, Q = cs$Q, U = cs$U, df_complete = if (is.finite(cs$n)) cs$n - cs$k else "Inf",
       qbar = p$qbar, ubar = p$ubar, b = p$b, t = p$t, df = p$df, r = p$r, fmi = p$fmi)
})
write_json(list(mice_version = as.character(packageVersion("mice")), cases = out),
           "tests/data/impute/pool_scalar.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
