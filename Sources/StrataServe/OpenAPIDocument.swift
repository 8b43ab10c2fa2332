/// The HTTP API's OpenAPI document (docs/openapi.yaml, embedded), served at /openapi.yaml.
enum OpenAPIDocument {
    static let yaml = String(decoding: PackageResources.openapi_yaml, as: UTF8.self)
}
