package xenapi

// The XenAPI model in internal/api is generated from api/schema.json.
//go:generate go run ../../tools/xenapigen -schema ../../api/schema.json -out ../api
