// No WebRTC in this test environment: the tracker only relays signalling JSON.
export const RTCPeerConnection = undefined
export const RTCSessionDescription = undefined
export const RTCIceCandidate = undefined
export default {}
