# Reference values for toolkit/analysis/predict (smoothed calibration).
# Run from the repository root:  Rscript tests/_scripts/make_predict_reference.R
# Writes tests/data/predict/loess_reference.csv: x, y and R's exact local regression fits
# (loess with surface = "direct", so no kd-tree interpolation) for the spans/degrees below.
# Austin & Steyerberg (2019) compute ICI from loess(y ~ p) with R's defaults (span 0.75, degree 2).
set.seed(20261128)
n <- 400
x <- sort(runif(n, 0.01, 0.9))
y <- rbinom(n, 1, plogis(qlogis(x) * 0.8 + 0.2))
fit <- function(span, degree) {
  m <- loess(y ~ x, span = span, degree = degree, family = "gaussian",
             control = loess.control(surface = "direct", statistics = "exact"))
  predict(m, newdata = data.frame(x = x))
}
out <- data.frame(
  x = x, y = y,
  d2_s075 = fit(0.75, 2),
  d2_s050 = fit(0.50, 2),
  d1_s075 = fit(0.75, 1)
)
# ICI as in Austin & Steyerberg's appendix code, on the exact fit
cat(sprintf("ICI (degree 2, span 0.75): %.12f\n", mean(abs(out$d2_s075 - x))))
write.csv(out, "tests/data/predict/loess_reference.csv", row.names = FALSE)
