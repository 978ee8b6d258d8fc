# Reference p-values for Table 1's optional tests, from base R's stats package, on R's own
# survival::gbsg data (tests/data/survival/gbsg.csv), grouped by hormone therapy (hormon) and by
# tumour grade (three groups).  Run once:  Rscript tests/_scripts/make_table1_reference.R
d <- read.csv("tests/data/survival/gbsg.csv")
d$grade_c <- paste0("g", d$grade)        # grade as text -> categorical in Regent
d$meno_c <- ifelse(d$meno == 1, "post", "pre")
out <- c()
add <- function(key, call, p) out <<- c(out, sprintf('  "%s": {"call": "%s", "p": %.17g}', key, call, p))
g2 <- factor(d$hormon); g3 <- factor(d$grade_c)
add("age_by_hormon", "t.test(age ~ hormon)", t.test(age ~ g2, data = d)$p.value)
add("nodes_by_hormon", "wilcox.test(nodes ~ hormon, exact=FALSE, correct=TRUE)",
    wilcox.test(nodes ~ g2, data = d, exact = FALSE, correct = TRUE)$p.value)
add("meno_by_hormon", "chisq.test(table(meno_c, hormon), correct=FALSE)",
    chisq.test(table(d$meno_c, g2), correct = FALSE)$p.value)
add("age_by_grade", "oneway.test(age ~ grade, var.equal=TRUE)", oneway.test(age ~ g3, data = d, var.equal = TRUE)$p.value)
add("nodes_by_grade", "kruskal.test(nodes ~ grade)", kruskal.test(nodes ~ g3, data = d)$p.value)
add("meno_by_grade", "chisq.test(table(meno_c, grade), correct=FALSE)",
    chisq.test(table(d$meno_c, g3), correct = FALSE)$p.value)
dir.create("tests/data/describe", showWarnings = FALSE)
writeLines(c("{", paste(out, collapse = ",\n"), "}"), "tests/data/describe/table1_tests.json")
