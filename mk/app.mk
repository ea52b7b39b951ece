# The Functions app. The host reads a flat folder (host.json, the executable named by
# customHandler.description.defaultExecutablePath, one folder per function with its
# function.json) and never looks deeper, so the repo root is not an app: `make stage` builds one.

APP_DIR   := .build/app
APP_ZIP   := .build/usage-export.zip
APP_FUNCS := $(patsubst functions/%/function.json,%,$(wildcard functions/*/function.json))

.PHONY: stage package

# stage: a Linux amd64 static binary plus host.json and every functions/<Name>/function.json,
# laid out for `func start --script-root $(APP_DIR)` or for zipping.
stage:
	rm -rf $(APP_DIR)
	mkdir -p $(APP_DIR)
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags="-s -w" -o $(APP_DIR)/handler ./handler
	cp host.json $(APP_DIR)/host.json
	for f in $(APP_FUNCS); do mkdir -p $(APP_DIR)/$$f && cp functions/$$f/function.json $(APP_DIR)/$$f/function.json; done
	@echo "staged $(APP_DIR): host.json handler $(APP_FUNCS)"

# package: the deployment zip, with the handler's executable bit kept (without it the host
# cannot start the handler on Flex Consumption).
package: stage
	$(GO) run ./internal/tools/zipapp -dir $(APP_DIR) -exec handler -o $(APP_ZIP)
	@echo "packaged $(APP_ZIP)"
