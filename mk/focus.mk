# focus-figures prints the FOCUS dataset's figures (docs/output-format.md, "The FOCUS dataset"):
# for two EA enrollments and two MCA billing profiles over three closed periods, the rows of each
# input and of the FOCUS partition, Σ BilledCost / Σ EffectiveCost against the sandbox's ground
# truth of the actual / amortized partitions, per commitment Used + Unused = purchases, the
# columns checked against internal/focus/columns.json, and DuckDB's totals next to the manifests'.
focus-figures:
	go test -count=1 -v -run 'TestBuildInvariants/usageDetails|TestDuckDBReadsFocus|TestColumnTable|TestVerify' ./internal/focus

.PHONY: focus-figures
