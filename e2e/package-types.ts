// presence.js installed as a package (package.json's file: dependency, as
// `npm install ./channel/client` makes it): its exports give the types.
import {Socket, Presence, type ConnectionState} from "@presencekit/presence"

const socket = new Socket("wss://example.test/socket", {params: {token: "t"}})
const state: ConnectionState = socket.state
const presence = new Presence<{name: string}>(socket.channel("room:1"))
presence.onSync(() => console.log(state, presence.list((key, {metas}) => key + metas[0].name)))
// @ts-expect-error: a Socket needs its endpoint
new Socket()
