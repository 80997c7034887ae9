/**
 * Socket addresses as ringline reports them: TCP (IPv4/IPv6) or Unix.
 *
 * @since 0.1.0
 */

/**
 * An IPv4 or IPv6 endpoint. `host` is always a numeric address.
 *
 * @since 0.1.0
 * @category models
 */
export interface TcpAddress {
  readonly _tag: "TcpAddress"
  readonly family: 4 | 6
  readonly host: string
  readonly port: number
}

/**
 * A UDP endpoint (IPv4 or IPv6). `host` is always a numeric address. Structurally a
 * {@link TcpAddress} with its own tag, so a datagram's sender is never mistaken for a stream peer.
 *
 * @since 0.1.0
 * @category models
 */
export interface UdpAddress {
  readonly _tag: "UdpAddress"
  readonly family: 4 | 6
  readonly host: string
  readonly port: number
}

/**
 * A Unix-domain socket endpoint. An unnamed peer (the usual client) has `path === ""`; an abstract
 * socket's path starts with `"\0"`.
 *
 * @since 0.1.0
 * @category models
 */
export interface UnixAddress {
  readonly _tag: "UnixAddress"
  readonly path: string
}

/**
 * @since 0.1.0
 * @category models
 */
export type Address = TcpAddress | UnixAddress

/**
 * @since 0.1.0
 * @category constructors
 */
export const tcp = (host: string, port: number, family: 4 | 6 = host.includes(":") ? 6 : 4): TcpAddress => ({
  _tag: "TcpAddress",
  family,
  host,
  port
})

/**
 * @since 0.1.0
 * @category constructors
 */
export const udp = (host: string, port: number, family: 4 | 6 = host.includes(":") ? 6 : 4): UdpAddress => ({
  _tag: "UdpAddress",
  family,
  host,
  port
})

/**
 * @since 0.1.0
 * @category constructors
 */
export const unix = (path: string): UnixAddress => ({ _tag: "UnixAddress", path })

/**
 * `127.0.0.1:7878`, `[::1]:7878` or `unix:/tmp/sock`.
 *
 * @since 0.1.0
 * @category formatting
 */
export const format = (address: Address | UdpAddress): string =>
  address._tag === "UnixAddress"
    ? `unix:${address.path === "" ? "(unnamed)" : address.path}`
    : address.family === 6
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`
