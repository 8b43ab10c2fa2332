import XCTest
@testable import StrataRedis

final class RedisConfigTests: XCTestCase {
    func testURLWithEverything() throws {
        let c = try RedisConfig(url: "redis://alice:p%40ss%3Aword@cache.local:6380/4")
        XCTAssertEqual(c.host, "cache.local")
        XCTAssertEqual(c.port, 6380)
        XCTAssertEqual(c.username, "alice")
        XCTAssertEqual(c.password, "p@ss:word")
        XCTAssertEqual(c.database, 4)
    }

    func testURLDefaultsAndPasswordOnly() throws {
        let plain = try RedisConfig(url: "redis://10.0.0.7")
        XCTAssertEqual(plain.host, "10.0.0.7")
        XCTAssertEqual(plain.port, 6379)
        XCTAssertNil(plain.username)
        XCTAssertNil(plain.password)
        XCTAssertEqual(plain.database, 0)

        let passwordOnly = try RedisConfig(url: "redis://:secret@[::1]:7000/")
        XCTAssertEqual(passwordOnly.host, "::1")
        XCTAssertEqual(passwordOnly.port, 7000)
        XCTAssertNil(passwordOnly.username)
        XCTAssertEqual(passwordOnly.password, "secret")
        XCTAssertEqual(passwordOnly.database, 0)
    }

    func testInvalidURLs() {
        for url in ["http://host", "rediss://host", "redis://", "redis://host:0", "redis://host:99999",
                    "redis://host:abc", "redis://host/x", "redis://host/-1", "redis://user@host",
                    "redis://host?db=1", "redis://[::1", "redis://:p%zz@host"] {
            do {
                let c = try RedisConfig(url: url)
                XCTFail("\(url) parsed as \(c)")
            } catch {
                guard case .invalidURL = error else { return XCTFail("\(url): wrong error \(error)") }
            }
        }
    }
}
