# Reference values from R's `riskRegression` for Regent's IPCW Brier score and integrated Brier
# score (toolkit/analysis/predict/censored.py), on data where an event and a censoring share a
# time: the case where the IPCW convention matters.
#
# Run once from the repository root, after make_survival_reference.R (it reads gbsg.csv and
# lung.csv written by that script):
#
#     Rscript tests/_scripts/make_brier_reference.R
#
# Needs riskRegression (Debian: apt-get install r-cran-riskregression; 2022.11.28 here) besides
# base R.  It writes tests/data/survival/brier_reference.json; every value is stored next to the
# R call that produced it ("call").  tests/analysis/test_predict_brier_ibs.py reads it and needs
# no R.
#
# Predictions are fixed formulas, not fitted models, so that R and Python evaluate exactly the
# same risks: risk_i(t) = 1 - exp(-(t / s)^k * exp(lp_i)), with lp_i stored per person.
#
# riskRegression's Score weights a case with the event at T_i by 1 / G(T_i-) (ipcw with lag = 1)
# and a person event-free at t by 1 / G(t), G the reverse Kaplan-Meier of censoring; its "IBS"
# summary integrates the Brier curve as a left Riemann sum over the given times, divided by the
# last time: IBS(t_K) = sum_{k < K} Brier(t_k) (t_{k+1} - t_k) / t_K.

suppressPackageStartupMessages({
  library(survival)
  library(prodlim)
  library(riskRegression)
})
options(warn = 1)

out_dir <- file.path("tests", "data", "survival")

source(file.path("tests", "_scripts", "json_writer.R"))  # to_json(), arr()

score_call <- paste0("Score(list(m = risk), formula = Hist(time, event) ~ 1, data = %s, times = times, ",
                     "metrics = \"brier\", summary = \"ibs\", cens.model = \"km\", null.model = FALSE, ",
                     "se.fit = FALSE)$Brier$score")

brier_ref <- function(id, df, data_expr, times, risk, extra) {
  sc <- Score(list(m = risk), formula = Hist(time, event) ~ 1, data = df, times = times,
              metrics = "brier", summary = "ibs", cens.model = "km", null.model = FALSE, se.fit = FALSE)
  s <- as.data.frame(sc$Brier$score)
  coincide <- sum(df$event == 1 & df$time %in% df$time[df$event == 0])
  c(list(id = id, dataset = data_expr, call = sprintf(score_call, data_expr),
         times = arr(s$times), brier = arr(s$Brier), ibs = arr(s$IBS),
         cases_tied_with_a_censoring = coincide), extra)
}

# a hand-made set: an event and a censoring both at time 2; risk(t) = t / 5 for everyone
hand <- data.frame(time = c(1, 2, 2, 3, 4, 5), event = c(1, 1, 0, 0, 1, 0))
hand_times <- c(1, 2, 3, 4)
hand_risk <- matrix(rep(hand_times / 5, each = nrow(hand)), nrow = nrow(hand))

weibull_case <- function(id, file, lp_expr, s, k, tau) {
  df <- read.csv(file.path(out_dir, file))
  df <- df[, c("time", "event", setdiff(names(df), c("time", "event")))]
  lp <- eval(parse(text = lp_expr), df)
  times <- c(0, tau * (1:10) / 10)
  risk <- sapply(times, function(t) 1 - exp(-(t / s)^k * exp(lp)))
  brier_ref(id, df, sub(".csv", "", file, fixed = TRUE), times, risk,
            list(risk_formula = sprintf("1 - exp(-(t / %s)^%s * exp(lp)), lp = %s", s, k, lp_expr),
                 scale = s, shape = k, lp = arr(lp)))
}

ref <- list(
  meta = list(generated_by = "Rscript tests/_scripts/make_brier_reference.R",
              r_version = R.version.string,
              riskRegression_version = as.character(packageVersion("riskRegression")),
              note = "times include 0 where risk(0) = 0; riskRegression's IBS is a left Riemann sum over times divided by the last time"),
  brier = list(
    c(brier_ref("hand_ties", hand, "hand", hand_times, hand_risk,
                list(data = list(time = arr(hand$time), event = arr(hand$event)),
                     risk = lapply(seq_len(nrow(hand_risk)), function(i) arr(hand_risk[i, ]))))),
    weibull_case("gbsg", "gbsg.csv", "0.02 * (age - 50) + 0.04 * nodes + 0.3 * (grade - 2) - 0.4 * hormon",
                 2000, 1.3, 1825),
    weibull_case("lung", "lung.csv", "0.02 * (age - 60) + 0.4 * (ph_ecog - 1) - 0.5 * (sex - 1)",
                 400, 1.2, 730)
  )
)

writeLines(to_json(ref), file.path(out_dir, "brier_reference.json"))
cat("wrote", file.path(out_dir, "brier_reference.json"), "\n")
